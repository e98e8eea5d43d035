"""The metadata database: one SQLAlchemy engine, named migrations, atomic write transactions."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sqlite3
import tempfile
from pathlib import Path

import orjson
import sqlalchemy as sa
from sqlalchemy import event

from ..domain.errors import StorageError
from .schema import MIGRATIONS, migrations_table


def utcnow() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json_dumps(value) -> str:
    return orjson.dumps(value).decode()


def _sqlite_engine(url: str) -> sa.Engine:
    engine = sa.create_engine(url, connect_args={"timeout": 60, "check_same_thread": False},
                              json_serializer=_json_dumps, json_deserializer=orjson.loads)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see _on_begin)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # Writers take the lock up front so that read-then-write (next version number) is
        # serialized across processes instead of failing on upgrade.
        mode = "IMMEDIATE" if conn.get_execution_options().get("write") else "DEFERRED"
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _private_sqlite_file(path: Path) -> None:
    """Create the database file 0600 before SQLite opens it: it holds endpoint keys, and SQLite
    gives its -wal and -shm files (which hold recent pages, keys included) the database's mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT, 0o600))
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(OSError):  # best effort on files made before this rule
            if p.stat().st_mode & 0o077:
                os.chmod(p, 0o600)


class Database:
    def __init__(self, url: str):
        self.url = url
        self.path = Path(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else None
        try:
            if self.path is not None:
                _private_sqlite_file(self.path)
                self.engine = _sqlite_engine(url)
            else:
                self.engine = sa.create_engine(url, pool_pre_ping=True)
            self._writer = self.engine.execution_options(write=True)
            self.migrate()
        except (sa.exc.OperationalError, OSError, sqlite3.Error) as e:
            raise StorageError(f"cannot open database {url}: {self._why(e)}") from e

    def _why(self, e: BaseException) -> str:
        """SQLite says "unable to open database file" for a read-only or full directory; say which."""
        reason = str(getattr(e, "orig", None) or getattr(e, "strerror", None) or e)
        if self.path is not None:
            try:
                with tempfile.TemporaryFile(dir=self.path.parent):
                    pass
            except OSError as probe:
                return f"{reason} (the workspace directory {self.path.parent} refuses writes: {probe.strerror})"
        return reason

    def migrate(self) -> None:
        # Most opens find the schema current: check that without taking the write lock.
        with self.read() as conn:
            if sa.inspect(conn).has_table(migrations_table.name):
                done = {r.name for r in conn.execute(sa.select(migrations_table.c.name))}
                if all(name in done for name, _ in MIGRATIONS):
                    return
        with self.write() as conn:
            migrations_table.create(conn, checkfirst=True)
            done = {r.name for r in conn.execute(sa.select(migrations_table.c.name))}
            for name, step in MIGRATIONS:
                if name not in done:
                    step(conn)
                    conn.execute(migrations_table.insert().values(name=name, applied_at=utcnow()))

    @contextlib.contextmanager
    def write(self):
        """A transaction that holds the write lock from its first statement; all or nothing."""
        try:
            with self._writer.begin() as conn:
                yield conn
        except sa.exc.OperationalError as e:
            raise StorageError(f"database write failed: {self._why(e)}") from e

    @contextlib.contextmanager
    def read(self):
        with self.engine.connect() as conn:
            yield conn

    def watch(self) -> "ChangeWatch":
        return ChangeWatch(self.path)

    def close(self) -> None:
        self.engine.dispose()


class ChangeWatch:
    """Whether anything was committed to the database since the last look, so that a reader
    polling many rows reads them again only when they may differ. SQLite's `data_version` on a
    connection of the watch's own: it never writes, so every commit is another connection's.
    Without SQLite (a server database), the answer is always yes."""

    def __init__(self, path: Path | None):
        self._conn = sqlite3.connect(path, check_same_thread=False) if path is not None else None
        self._seen: int | None = None

    def changed(self) -> bool:
        if self._conn is None:
            return True
        version = self._conn.execute("PRAGMA data_version").fetchone()[0]
        changed, self._seen = version != self._seen, version
        return changed

    def forget(self) -> None:
        """The last answer was not acted on (the read failed): say yes next time."""
        self._seen = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
