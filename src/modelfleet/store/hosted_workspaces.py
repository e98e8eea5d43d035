"""The workspaces a server hosts besides its primary one: their rows, kept in the primary's store,
and their own databases (a SQLite file in the workspace's folder, or on PostgreSQL a database of
their own beside the primary's, `<primary database>_<name>`, which the server creates).

A row is the truth of what exists: `creating` while its store and folder are being made (served
by nobody), `ready`, then `deleting` until its store and folder are gone, when the row goes.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import sqlalchemy as sa

from ..domain.errors import AlreadyExists, InvalidInput, NotFound
from ..schema.database_url import engine_url
from .db import Database, utcnow
from .schema import hosted_workspaces

CREATING, READY, DELETING = "creating", "ready", "deleting"
POSTGRESQL_NAME_BYTES = 63


class HostedWorkspaceStore:
    def __init__(self, db: Database):
        self.db = db

    def claim(self, name: str, created_by: str) -> None:
        """Record a workspace about to be made (`creating`); AlreadyExists when the name is taken."""
        with self.db.write() as conn:
            if conn.execute(sa.select(hosted_workspaces.c.name).where(hosted_workspaces.c.name == name)).first():
                raise AlreadyExists(f"workspace {name!r} already exists")
            conn.execute(hosted_workspaces.insert().values(name=name, state=CREATING, created_at=utcnow(),
                                                           created_by=created_by))

    def mark(self, name: str, state: str) -> None:
        with self.db.write() as conn:
            conn.execute(hosted_workspaces.update().where(hosted_workspaces.c.name == name).values(state=state))

    def remove(self, name: str) -> None:
        with self.db.write() as conn:
            conn.execute(hosted_workspaces.delete().where(hosted_workspaces.c.name == name))

    def get(self, name: str) -> dict:
        with self.db.read() as conn:
            found = conn.execute(sa.select(hosted_workspaces).where(hosted_workspaces.c.name == name)).first()
        if found is None:
            raise NotFound(f"workspace {name!r} not found")
        return found._asdict()

    def list(self) -> list[dict]:
        with self.db.read() as conn:
            return [r._asdict() for r in conn.execute(sa.select(hosted_workspaces).order_by(hosted_workspaces.c.name))]


def database_url(primary: Database, folder: Path, name: str) -> str:
    """Where a hosted workspace keeps its metadata: beside the primary's, in the same kind of store."""
    if not primary.is_postgresql:
        return f"sqlite:///{folder / 'workspace.db'}"
    url = engine_url(primary.url)
    database = f"{url.database}_{name}"
    if len(database.encode()) > POSTGRESQL_NAME_BYTES:
        raise InvalidInput(f"workspace name {name!r}: its database {database!r} would be longer than "
                           f"PostgreSQL's {POSTGRESQL_NAME_BYTES} bytes; choose a shorter name")
    return url.set(database=database).render_as_string(hide_password=False)


def _quoted(url: str) -> str:
    return '"' + (engine_url(url).database or "").replace('"', '""') + '"'


def create_database(primary: Database, url: str) -> None:
    """Make a hosted workspace's PostgreSQL database (the primary's role needs CREATEDB); a
    leftover of a create that crashed is dropped first. SQLite makes its file on first open."""
    if not primary.is_postgresql:
        return
    drop_database(primary, url)
    with primary.engine.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {_quoted(url)}")


def drop_database(primary: Database, url: str) -> None:
    """Remove a hosted workspace's database (nothing when it is already gone). A SQLite file goes
    with its folder."""
    if not primary.is_postgresql:
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(engine_url(url).database + suffix).unlink()
        return
    with primary.engine.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {_quoted(url)} WITH (FORCE)")
