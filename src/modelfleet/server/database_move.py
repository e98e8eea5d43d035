"""`fleet workspace migrate --to URL`: the workspace's metadata moved into another database
(its SQLite file into PostgreSQL), with the server stopped, and the server pointed at it."""

from __future__ import annotations

import fcntl
import time

from ..domain.errors import Conflict, InvalidInput
from ..store import Database
from ..store.copy import copy_rows
from ..schema.database_url import redact
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
            try:
                rows = copy_rows(source, target)
            finally:
                target.close()
        finally:
            source.close()
        settings.update(ws, database_url=to_url)
    return {"workspace": ws.name, "from": redact(source_url), "to": redact(to_url), "rows": rows}
