"""`fleet workspace migrate --to URL`: the workspace's metadata moved into another database
(its SQLite file into PostgreSQL), with the server stopped, and the server pointed at it.

The workspaces its server hosts move with it, all or nothing: each one's store into a database of
its own beside the target, `<target database>_<name>` (as hosting names them on PostgreSQL,
store/hosted_workspaces.py), made here, and their list with the primary's rows. Those databases are
filled first and the primary's rows last, in one transaction; a failure drops what was made here
and leaves the settings, so the server starts on the stores it used before."""

from __future__ import annotations

import contextlib
import fcntl
import time

from pathlib import Path

import sqlalchemy as sa

from ..domain.errors import Conflict, InvalidInput, StorageError
from ..store import Database
from ..store.copy import copy_rows
from ..store.hosted_workspaces import READY, HostedWorkspaceStore, create_database, database_url, drop_database
from ..store.schema import hosted_workspaces
from ..schema.database_url import engine_url, redact
from ..schema.workspace import Workspace
from ..schema import server_settings as settings


LOCK_WAIT_S = 15.0   # a server just stopped may take a moment to let its lock go


def _take(lock, wait_s: float) -> bool:
    """The workspace's lock, exclusively, waiting up to `wait_s` for a stopping server to release it."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)


def migrate(ws: Workspace, to_url: str) -> dict:
    """Copy every row into `to_url` (an empty database; its schema is made), then save it as the
    workspace's database. The source is left as it was, a backup until its owner removes it."""
    source_url = settings.load(ws).database(ws)
    if to_url == source_url:
        raise InvalidInput(f"--to: the workspace {ws.name!r} already keeps its metadata in {redact(to_url)}")
    settings.merged(ws, {"database_url": to_url})   # a bad URL is refused before anything opens
    ws.run_dir.mkdir(parents=True, exist_ok=True)
    with open(ws.run_dir / "server.lock", "a+") as lock:
        # The server holds this lock while it runs: a copy never races its writes, nor it a start.
        if not _take(lock, LOCK_WAIT_S):
            raise Conflict(f"the server of workspace {ws.name!r} is running; stop it first: "
                           f"fleet server stop -w {ws.name}")
        source = Database(source_url)
        try:
            target = Database(to_url)
            made: list[str] = []   # the hosted workspaces' databases, dropped again on a failure
            try:
                hosted = _move_hosted(ws, source, target, made)
                rows = copy_rows(source, target, also=(hosted_workspaces,))
            except BaseException:
                for url in made:
                    drop_database(target, url)
                raise
            finally:
                target.close()
        finally:
            source.close()
        settings.update(ws, database_url=to_url)
    return {"workspace": ws.name, "from": redact(source_url), "to": redact(to_url), "rows": rows,
            "workspaces": hosted}


def _move_hosted(ws: Workspace, source: Database, target: Database, made: list[str]) -> dict[str, dict]:
    """Copy each hosted workspace's store into a new database beside `target`, each URL added to
    `made` once made. Per workspace: where it went, rows per table."""
    rows = HostedWorkspaceStore(source).list()
    unsettled = [r["name"] for r in rows if r["state"] != READY]
    if unsettled:
        raise Conflict(f"workspace {unsettled[0]!r} is half made or half deleted ({len(unsettled)} such): start "
                       "the server once so that it finishes, stop it, then migrate")
    moves = []
    for row in rows:
        folder = ws.path / "workspaces" / row["name"]
        src, dst = database_url(source, folder, row["name"]), database_url(target, folder, row["name"])
        if not source.is_postgresql and not Path(src.removeprefix("sqlite:///")).is_file():
            raise StorageError(f"workspace {row['name']!r}: its store {src.removeprefix('sqlite:///')} is missing")
        if src == dst:   # a SQLite target: each stays in its own file
            continue
        if target.is_postgresql and _exists(target, dst):
            raise Conflict(f"database {redact(dst)} exists already: the hosted workspace {row['name']!r} moves "
                           "into a database made for it; drop that one or migrate elsewhere")
        moves.append((row["name"], src, dst))
    moved: dict[str, dict] = {}
    for name, src, dst in moves:
        create_database(target, dst)
        made.append(dst)
        with contextlib.closing(Database(src)) as hosted_source, contextlib.closing(Database(dst)) as hosted:
            shown = sa.make_url(target.url).set(database=engine_url(dst).database)   # as the user spelled --to
            moved[name] = {"to": redact(shown.render_as_string(hide_password=False)),
                           "rows": copy_rows(hosted_source, hosted)}
    return moved


def _exists(target: Database, url: str) -> bool:
    """Whether the PostgreSQL database at `url` exists already, on the target's server."""
    with target.read() as conn:
        return conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"),
                            {"n": engine_url(url).database}).first() is not None
