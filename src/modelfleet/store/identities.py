"""Users, service principals, their API tokens and role assignments: the only SQL for them.

A token is kept as its SHA-256 only (domain/tokens.py); it is returned once, when made. Deleting
a principal takes its tokens and assignments with it, at once.
"""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa

from ..domain.errors import AlreadyExists, Conflict, NotFound
from ..domain.tokens import new_token, token_hash
from .db import Database, utcnow
from .schema import principals, role_assignments, tokens

ROOT_SCOPE = "/"                 # every workspace on the server
LAST_USED_EVERY = dt.timedelta(minutes=1)   # a token's last use is written at most this often


def _iso(at: dt.datetime) -> str:
    return at.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _token_view(row) -> dict:
    return {"name": row.name, "principal": row.principal, "created_at": row.created_at,
            "expires_at": row.expires_at, "last_used_at": row.last_used_at}


class IdentityStore:
    def __init__(self, db: Database):
        self.db = db

    # -- principals ----------------------------------------------------------------------------

    def create_principal(self, name: str, kind: str, *, created_by: str, description: str = "",
                         token_name: str = "default", expires_in: dt.timedelta | None = None) -> tuple[dict, str]:
        """A user or service principal and its first token (returned once)."""
        token = new_token()
        now = utcnow()
        with self.db.write() as conn:
            if conn.execute(sa.select(principals.c.name).where(principals.c.name == name)).first():
                raise AlreadyExists(f"{kind.replace('_', ' ')} {name!r} already exists")
            conn.execute(principals.insert().values(name=name, kind=kind, description=description,
                                                    created_at=now, created_by=created_by))
            conn.execute(tokens.insert().values(hash=token_hash(token), principal=name, name=token_name,
                                                created_at=now, expires_at=self._expiry(expires_in)))
        return self.principal(name), token

    def principals(self, kind: str | None = None) -> list[dict]:
        q = sa.select(principals).order_by(principals.c.name)
        if kind is not None:
            q = q.where(principals.c.kind == kind)
        with self.db.read() as conn:
            return [r._asdict() for r in conn.execute(q)]

    def principal(self, name: str) -> dict:
        with self.db.read() as conn:
            row = conn.execute(sa.select(principals).where(principals.c.name == name)).first()
        if row is None:
            raise NotFound(f"user or service principal {name!r} not found")
        return row._asdict()

    def delete_principal(self, name: str) -> None:
        with self.db.write() as conn:
            self._keep_an_owner(conn, without_principal=name)
            conn.execute(tokens.delete().where(tokens.c.principal == name))
            conn.execute(role_assignments.delete().where(role_assignments.c.principal == name))
            if not conn.execute(principals.delete().where(principals.c.name == name)).rowcount:
                raise NotFound(f"user or service principal {name!r} not found")

    # -- tokens --------------------------------------------------------------------------------

    @staticmethod
    def _expiry(expires_in: dt.timedelta | None) -> str | None:
        return None if expires_in is None else _iso(dt.datetime.now(dt.timezone.utc) + expires_in)

    def create_token(self, principal: str, name: str, expires_in: dt.timedelta | None = None) -> tuple[dict, str]:
        token = new_token()
        with self.db.write() as conn:
            if not conn.execute(sa.select(principals.c.name).where(principals.c.name == principal)).first():
                raise NotFound(f"user or service principal {principal!r} not found")
            if conn.execute(sa.select(tokens.c.name).where(tokens.c.principal == principal,
                                                           tokens.c.name == name)).first():
                raise AlreadyExists(f"{principal} already has a token named {name!r}; revoke it or pick another name")
            conn.execute(tokens.insert().values(hash=token_hash(token), principal=principal, name=name,
                                                created_at=utcnow(), expires_at=self._expiry(expires_in)))
            row = conn.execute(sa.select(tokens).where(tokens.c.hash == token_hash(token))).one()
        return _token_view(row), token

    def tokens(self, principal: str) -> list[dict]:
        with self.db.read() as conn:
            rows = conn.execute(sa.select(tokens).where(tokens.c.principal == principal).order_by(tokens.c.name))
            return [_token_view(r) for r in rows]

    def revoke_token(self, principal: str, name: str) -> None:
        """Gone at once: the next request with it is refused."""
        with self.db.write() as conn:
            if not conn.execute(tokens.delete().where(tokens.c.principal == principal,
                                                      tokens.c.name == name)).rowcount:
                raise NotFound(f"{principal} has no token named {name!r}")

    def authenticate(self, token: str) -> str | None:
        """The principal a token belongs to, or None (unknown, revoked or expired)."""
        digest = token_hash(token)
        now = dt.datetime.now(dt.timezone.utc)
        with self.db.read() as conn:
            row = conn.execute(sa.select(tokens).where(tokens.c.hash == digest)).first()
        if row is None or (row.expires_at is not None and row.expires_at <= _iso(now)):
            return None
        if row.last_used_at is None or row.last_used_at <= _iso(now - LAST_USED_EVERY):
            with self.db.write() as conn:
                conn.execute(tokens.update().where(tokens.c.hash == digest).values(last_used_at=_iso(now)))
        return row.principal

    # -- role assignments ----------------------------------------------------------------------

    def assign(self, principal: str, role: str, scope: str, *, created_by: str) -> dict:
        with self.db.write() as conn:
            if not conn.execute(sa.select(principals.c.name).where(principals.c.name == principal)).first():
                raise NotFound(f"user or service principal {principal!r} not found")
            if conn.execute(sa.select(role_assignments.c.id).where(
                    role_assignments.c.principal == principal, role_assignments.c.role == role,
                    role_assignments.c.scope == scope)).first():
                raise AlreadyExists(f"{principal} already has role {role!r} at scope {scope!r}")
            assignment_id = str(uuid.uuid4())
            conn.execute(role_assignments.insert().values(id=assignment_id, principal=principal, role=role,
                                                          scope=scope, created_at=utcnow(), created_by=created_by))
            return conn.execute(sa.select(role_assignments).where(
                role_assignments.c.id == assignment_id)).one()._asdict()

    def assignments(self, principal: str | None = None, scope: str | None = None) -> list[dict]:
        q = sa.select(role_assignments).order_by(role_assignments.c.scope, role_assignments.c.principal,
                                                 role_assignments.c.role)
        if principal is not None:
            q = q.where(role_assignments.c.principal == principal)
        if scope is not None:
            q = q.where(role_assignments.c.scope.in_([scope, ROOT_SCOPE]))
        with self.db.read() as conn:
            return [r._asdict() for r in conn.execute(q)]

    def unassign(self, principal: str, role: str, scope: str) -> None:
        with self.db.write() as conn:
            self._keep_an_owner(conn, without_assignment=(principal, role, scope))
            if not conn.execute(role_assignments.delete().where(
                    role_assignments.c.principal == principal, role_assignments.c.role == role,
                    role_assignments.c.scope == scope)).rowcount:
                raise NotFound(f"{principal} has no role {role!r} at scope {scope!r}")

    def roles_at(self, principal: str, scope: str) -> list[str]:
        """The roles a principal holds at `scope`, including those held at the root."""
        return sorted({a["role"] for a in self.assignments(principal, scope)})

    @staticmethod
    def _keep_an_owner(conn: sa.Connection, *, without_principal: str | None = None,
                       without_assignment: tuple[str, str, str] | None = None) -> None:
        """Nobody may lock everyone out: the last Owner at the root stays."""
        owners = conn.execute(sa.select(role_assignments.c.principal).where(
            sa.func.lower(role_assignments.c.role) == "owner", role_assignments.c.scope == ROOT_SCOPE)).scalars().all()
        left = [o for o in owners if o != without_principal and
                (without_assignment is None or (o, "owner", ROOT_SCOPE) !=
                 (without_assignment[0], without_assignment[1].lower(), without_assignment[2]))]
        if owners and not left:
            raise Conflict("refused: that would leave the server without an Owner; assign Owner to someone else first")
