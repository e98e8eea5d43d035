"""Environment versions: the only SQL for them. Rows become `Environment` entities here.

A version's content (requirements, index options, Python pin) never changes; its `lock` (the
exact versions its first build resolved, for this Python and platform) is written once by that
build, so every later build of the version installs the same packages.
"""

from __future__ import annotations

import re
import sqlalchemy as sa

from ..domain.errors import AlreadyExists, NotFound
from ..schema.records import Environment
from .db import Database, utcnow
from .schema import environments

_INT = re.compile(r"^[0-9]+$")


def _entity(row) -> Environment:
    return Environment(name=row.name, version=row.version, description=row.description, tags=row.tags,
                       image=row.image, content=row.content, sha256=row.sha256, source=row.source, lock=row.lock,
                       archived=bool(row.archived), created_at=row.created_at)


def _row(conn, name: str, version: str):
    return conn.execute(sa.select(environments).where(environments.c.name == name,
                                                      environments.c.version == version)).first()


class EnvironmentStore:
    def __init__(self, db: Database):
        self.db = db

    def version(self, name: str, version: str) -> Environment | None:
        with self.db.read() as conn:
            row = _row(conn, name, version)
        return _entity(row) if row is not None else None

    def latest(self, name: str) -> Environment | None:
        with self.db.read() as conn:
            row = conn.execute(sa.select(environments).where(
                environments.c.name == name, environments.c.archived == sa.false())
                .order_by(environments.c.seq.desc()).limit(1)).first()
        return _entity(row) if row is not None else None

    def list(self, name: str | None = None, include_archived: bool = False) -> list[Environment]:
        q = sa.select(environments).order_by(environments.c.name, environments.c.seq)
        if name:
            q = q.where(environments.c.name == name)
        if not include_archived:
            q = q.where(environments.c.archived == sa.false())
        with self.db.read() as conn:
            return [_entity(r) for r in conn.execute(q)]

    def add(self, name: str, version: str | None, *, content: dict, sha256: str, source: dict, image: str | None,
            description: str, tags: dict[str, str], exist_ok: bool = False) -> Environment:
        """Insert a version (the next number when `version` is None). The same name and version
        with the same content is returned when `exist_ok`; versions are immutable."""
        with self.db.write() as conn:
            if version is None:
                existing = conn.execute(sa.select(environments.c.version)
                                        .where(environments.c.name == name)).scalars()
                version = str(max((int(v) for v in existing if _INT.match(v)), default=0) + 1)
            else:
                row = _row(conn, name, version)
                if row is not None:
                    if exist_ok and row.sha256 == sha256:
                        return _entity(row)
                    why = " with different packages" if row.sha256 != sha256 else ""
                    raise AlreadyExists(f"environment {name}:{version} already exists{why}; versions are "
                                        "immutable, create a new version")
            seq = (conn.execute(sa.select(sa.func.max(environments.c.seq))).scalar() or 0) + 1
            values = dict(name=name, version=version, seq=seq, description=description or "", tags=tags,
                          image=image, content=content, sha256=sha256, source=source, lock=None, archived=False,
                          created_at=utcnow())
            conn.execute(environments.insert().values(**values))
        return Environment(**{k: v for k, v in values.items() if k != "seq"})

    def set_archived(self, name: str, version: str, archived: bool) -> None:
        with self.db.write() as conn:
            if not conn.execute(environments.update().where(
                    environments.c.name == name, environments.c.version == version)
                    .values(archived=archived)).rowcount:
                raise NotFound(f"environment {name}:{version} not found")

    def set_lock(self, name: str, version: str, lock: dict) -> Environment:
        """Record a version's resolution; a lock written meanwhile by another build for the same
        Python and platform wins, so every build of the version installs the same packages."""
        with self.db.write() as conn:
            row = _row(conn, name, version)
            if row is None:
                raise NotFound(f"environment {name}:{version} not found")
            current = row.lock
            if current and (current.get("python"), current.get("platform")) == (lock["python"], lock["platform"]):
                return _entity(row)
            conn.execute(environments.update().where(environments.c.name == name, environments.c.version == version)
                         .values(lock=lock))
            return _entity(_row(conn, name, version))
