"""The metadata database: one SQLAlchemy engine, Alembic migrations, atomic write transactions,
and a watch that says whether anything was committed. SQLite (a file in the workspace, the
embedded default) or PostgreSQL (a server many modelfleet servers share, through psycopg 3)."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import os
import sqlite3
import tempfile
from pathlib import Path

import orjson
import sqlalchemy as sa
from sqlalchemy import event

from ..domain.errors import InvalidInput, StorageError
from ..schema.database_url import engine_url, redact

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# PostgreSQL: every write transaction takes this advisory lock first, so that read-then-write
# (the next version number, an etag check) is serialized across servers as SQLite's BEGIN
# IMMEDIATE serializes it across processes; and commits announce themselves on this channel.
WRITE_LOCK_KEY = 0x6D666C74   # "mflt"
CHANGES_CHANNEL = "modelfleet_changes"


def utcnow() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json_dumps(value) -> str:
    return orjson.dumps(value).decode()


def _sqlite_engine(url: sa.URL) -> sa.Engine:
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


def _postgresql_engine(url: sa.URL) -> sa.Engine:
    try:
        import psycopg  # noqa: F401  (the optional driver: say which extra brings it)
    except ImportError:
        raise InvalidInput("a postgresql:// database needs psycopg: pip install 'modelfleet[postgresql]'") from None
    engine = sa.create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=8,
                              json_serializer=_json_dumps, json_deserializer=orjson.loads)

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        if conn.get_execution_options().get("write"):
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({WRITE_LOCK_KEY})")

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


@functools.cache
def _migration_head() -> str:
    """The newest revision: the last file of versions/, whose name is its revision (a linear chain,
    which test_database checks against Alembic's own answer). Alembic itself takes ~0.1 s to
    import, on every server's and command's way to its first query, and is needed only to migrate."""
    return max(p.stem for p in (MIGRATIONS_DIR / "versions").glob("[0-9]*.py"))


def _alembic_config(conn: sa.Connection):
    from alembic.config import Config
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = conn
    return config


def _current_revision(conn: sa.Connection) -> str | None:
    """The revision the database is at (Alembic's alembic_version table; None: none yet)."""
    if not sa.inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def _legacy_revision(conn: sa.Connection) -> str | None:
    """The last of the named migrations a workspace made before Alembic recorded (their names are
    the first Alembic revisions), or None for a new database."""
    if not sa.inspect(conn).has_table("schema_migrations"):
        return None
    done = {r[0] for r in conn.execute(sa.text("SELECT name FROM schema_migrations"))}
    last = None
    for name in ("0001_initial", "0002_computes", "0003_environments"):
        if name in done:
            last = name
    return last


class Database:
    def __init__(self, url: str):
        self.url = url
        parsed = engine_url(url)
        self.is_postgresql = parsed.get_backend_name() == "postgresql"
        self.path = Path(parsed.database) if not self.is_postgresql and parsed.database else None
        try:
            if self.is_postgresql:
                self.engine = _postgresql_engine(parsed)
            else:
                if self.path is not None:
                    _private_sqlite_file(self.path)
                self.engine = _sqlite_engine(parsed)
            self._writer = self.engine.execution_options(write=True)
            self.migrate()
        except (sa.exc.OperationalError, OSError, sqlite3.Error) as e:
            raise StorageError(f"cannot open database {redact(url)}: {self._why(e)}") from e

    def _why(self, e: BaseException) -> str:
        """SQLite says "unable to open database file" for a read-only or full directory; say which."""
        reason = str(getattr(e, "orig", None) or getattr(e, "strerror", None) or e).strip().splitlines()[0]
        if self.path is not None:
            try:
                with tempfile.TemporaryFile(dir=self.path.parent):
                    pass
            except OSError as probe:
                return f"{reason} (the workspace directory {self.path.parent} refuses writes: {probe.strerror})"
        return reason

    def migrate(self) -> None:
        """Bring the schema to the newest revision; a database made before Alembic (named
        migrations in `schema_migrations`) is stamped at its last one first, then upgraded."""
        # Most opens find the schema current: check that without taking the write lock.
        with self.read() as conn:
            if _current_revision(conn) == _migration_head():
                return
        from alembic import command
        with self.write() as conn:
            config = _alembic_config(conn)
            if _current_revision(conn) is None and (legacy := _legacy_revision(conn)) is not None:
                command.stamp(config, legacy)
                conn.execute(sa.text("DROP TABLE schema_migrations"))
            command.upgrade(config, "head")

    @contextlib.contextmanager
    def write(self, notify: bool = True):
        """A transaction that holds the write lock from its first statement; all or nothing.
        `notify`: tell every server's ChangeWatch at commit (not for heartbeats, which change no
        desired state and would make every server read every row again)."""
        try:
            with self._writer.begin() as conn:
                yield conn
                if self.is_postgresql and notify:   # delivered at commit, to every server's ChangeWatch
                    conn.exec_driver_sql(f"NOTIFY {CHANGES_CHANNEL}")
        except sa.exc.OperationalError as e:
            raise StorageError(f"database write failed: {self._why(e)}") from e

    @contextlib.contextmanager
    def read(self):
        with self.engine.connect() as conn:
            yield conn

    def watch(self) -> "ChangeWatch":
        if self.is_postgresql:
            return NotifyWatch(self.engine.url)
        return ChangeWatch(self.path)

    def close(self) -> None:
        self.engine.dispose()


class ChangeWatch:
    """Whether anything was committed to the database since the last look, so that a reader
    polling many rows reads them again only when they may differ. SQLite's `data_version` on a
    connection of the watch's own: it never writes, so every commit is another connection's.
    Without a file (an in-memory database), the answer is always yes."""

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


class NotifyWatch:
    """ChangeWatch on PostgreSQL: LISTEN on a connection of the watch's own; every write
    transaction (of any server) sends a NOTIFY that arrives when it commits. A lost connection
    answers yes and listens again on the next look."""

    def __init__(self, url: sa.URL):
        self._conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._conn = None
        self._pending = True   # the first look reads everything

    def _listen(self):
        import psycopg
        self._conn = psycopg.connect(self._conninfo, autocommit=True)
        self._conn.execute(f"LISTEN {CHANGES_CHANNEL}")

    def changed(self) -> bool:
        import psycopg
        try:
            if self._conn is None or self._conn.closed:
                self._listen()
                self._pending = True   # commits while nobody listened are unknown: assume some
            for _ in self._conn.notifies(timeout=0):
                self._pending = True
        except psycopg.Error:
            self.close()
            return True
        changed, self._pending = self._pending, False
        return changed

    def forget(self) -> None:
        self._pending = True

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
