"""Compute targets: the rows of the `computes` table (the only SQL for them).

A row is a Ray cluster that endpoints can run on: one modelfleet started and owns (its
`temp_dir` finds its processes) or one it attached by address. Endpoints name their compute in
their spec (`spec["compute"]`), so a compute in use cannot be removed.
"""

from __future__ import annotations

import sqlalchemy as sa

from ..domain.errors import AlreadyExists, Conflict, NotFound
from .db import Database, utcnow
from .schema import computes, endpoints


def _not_found(name: str) -> NotFound:
    return NotFound(f"compute {name!r} not found; see `fleet compute list`, or create one with "
                    f"`fleet compute create --name {name} --type ray`")


class ComputeStore:
    def __init__(self, db: Database):
        self.db = db

    def create(self, name: str, *, type: str, address: str, owned: bool, auth_token: str | None = None,
               temp_dir: str | None = None, spec: dict | None = None) -> dict:
        now = utcnow()
        with self.db.write() as conn:
            if conn.execute(sa.select(computes.c.name).where(computes.c.name == name)).first():
                raise AlreadyExists(f"compute {name!r} already exists")
            conn.execute(computes.insert().values(
                name=name, type=type, address=address, owned=owned, auth_token=auth_token, temp_dir=temp_dir,
                spec=spec or {}, created_at=now, updated_at=now))
        return self.get(name)

    def get(self, name: str) -> dict:
        with self.db.read() as conn:
            row = conn.execute(sa.select(computes).where(computes.c.name == name)).first()
        if row is None:
            raise _not_found(name)
        return row._asdict()

    def list(self) -> list[dict]:
        with self.db.read() as conn:
            return [r._asdict() for r in conn.execute(sa.select(computes).order_by(computes.c.name))]

    def users(self, name: str) -> list[str]:
        """The endpoints that run on compute `name`."""
        with self.db.read() as conn:
            return self._users(conn, name)

    def check_unused(self, name: str) -> None:
        with self.db.read() as conn:
            self._check_unused(conn, name)

    @staticmethod
    def _users(conn: sa.Connection, name: str) -> list[str]:
        q = (sa.select(endpoints.c.name).where(endpoints.c.spec["compute"].as_string() == name)
             .order_by(endpoints.c.name))
        return [r.name for r in conn.execute(q)]

    def _check_unused(self, conn: sa.Connection, name: str) -> None:
        users = self._users(conn, name)
        if users:
            raise Conflict(f"compute {name!r} is used by endpoint{'s' if len(users) > 1 else ''} "
                           f"{', '.join(users)}; delete them first")

    def delete(self, name: str, *, unless_used: bool = True) -> dict:
        """Remove the row; with `unless_used`, in the same transaction as the check that no
        endpoint uses it."""
        with self.db.write() as conn:
            row = conn.execute(sa.select(computes).where(computes.c.name == name)).first()
            if row is None:
                raise _not_found(name)
            if unless_used:
                self._check_unused(conn, name)
            conn.execute(computes.delete().where(computes.c.name == name))
        return row._asdict()
