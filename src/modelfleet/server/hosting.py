"""The workspaces a server hosts besides the one it was started on (the primary): made, served,
deleted over the API, and served again at the next start (docs/workspaces.md).

Each is a workspace like the primary (its own folder under the primary's `workspaces/NAME/`, its
own store, its own controller), with the primary's identities, activity log and launcher token.
Their rows, in the primary's store, say what exists (store/hosted_workspaces.py): a create that
crashed left a `creating` row nobody serves, a delete that crashed a `deleting` one; the next
start of the server (not a joined one) finishes both as deletes, and so does `delete` itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from typing import TYPE_CHECKING, Callable

from ..domain.errors import AlreadyExists, Conflict, NotFound, StorageError
from ..domain.names import check_workspace_name
from ..schema.workspace import Workspace
from ..store import Database
from ..store.leases import LeaseStore
from ..store.serving import ServingStore
from ..store.hosted_workspaces import (CREATING, DELETING, READY, HostedWorkspaceStore, create_database,
                                       database_url, drop_database)
from .telemetry.hooks import working_for
from .workspace_app import WorkspaceApp

if TYPE_CHECKING:
    from ..datastores import DatastoreDocument

log = logging.getLogger("modelfleet.server")

FOLLOW_EVERY_S = 2.0   # several servers on PostgreSQL: how often one looks for workspaces another made or deleted
LET_GO_WAIT_S = 5 * FOLLOW_EVERY_S   # how long a delete waits for the other servers to stop serving it


class HostedWorkspaces:
    def __init__(self, primary: WorkspaceApp, make: Callable[[Workspace, Database], WorkspaceApp], joined: bool):
        self.primary = primary
        self.rows = HostedWorkspaceStore(primary.db)
        self._make = make
        self._joined = joined
        self.apps: dict[str, WorkspaceApp] = {}
        self._lock = asyncio.Lock()   # one create, delete or follow at a time
        self._following: asyncio.Future | None = None

    def workspace(self, name: str) -> Workspace:
        return Workspace(name, self.primary.ws.path / "workspaces" / name)

    def app(self, name: str) -> WorkspaceApp | None:
        """The workspace served under /workspaces/NAME (the primary's own name too), or None."""
        return self.primary if name == self.primary.ws.name else self.apps.get(name)

    def names(self) -> list[str]:
        """Every workspace served here, the primary first."""
        return [self.primary.ws.name, *sorted(self.apps)]

    def view(self, name: str) -> dict:
        if name == self.primary.ws.name:
            return {"name": name, "primary": True, "url": self.primary.url}
        app = self.apps.get(name)
        if app is None:
            raise NotFound(f"workspace {name!r} not found")
        row = self.rows.get(name)
        return {"name": name, "primary": False, "url": app.url, "created_at": row["created_at"],
                "created_by": row["created_by"]}

    def open_endpoints(self) -> list[str]:
        """Endpoints with auth_mode none in every workspace served here (WORKSPACE/ENDPOINT for a
        hosted one's), read before the server listens: beyond loopback it refuses them."""
        def open_in(serving: ServingStore) -> list[str]:
            return [e["name"] for e in serving.endpoints() if e["spec"].get("auth_mode") == "none"]
        found = open_in(self.primary.stores.serving)
        for row in self.rows.list():
            if row["state"] == READY:
                db = Database(database_url(self.primary.db, self.workspace(row["name"]).path, row["name"]))
                try:
                    found += [f"{row['name']}/{e}" for e in open_in(ServingStore(db))]
                finally:
                    db.close()
        return found

    # -- the server's start and stop ---------------------------------------------------------------

    async def start(self) -> None:
        """Serve every ready workspace; finish what a crash left (not on a joined server, which
        cannot tell a crash from another server's create in progress)."""
        for row in await asyncio.to_thread(self.rows.list):
            try:
                if row["state"] == READY:
                    await self._serve(row["name"])
                elif not self._joined:
                    await self._remove(row["name"])
            except Exception:   # one broken workspace keeps neither the primary nor the others from serving
                log.exception("workspace %r: not served", row["name"])
        if self.primary.db.is_postgresql:
            self._following = asyncio.ensure_future(self._follow())

    async def stop(self, hand_over: bool) -> None:
        if self._following is not None:
            self._following.cancel()
        for name in list(self.apps):
            await self._let_go(name, hand_over)

    async def _let_go(self, name: str, hand_over: bool = False) -> None:
        """Stop serving a workspace here (its replicas on this server stopped); its store stays."""
        app = self.apps.pop(name)
        try:
            await app.stop(hand_over)
        except Exception:   # its database dropped by the server that deleted it, say
            log.exception("workspace %r: could not stop cleanly", name)
        finally:
            app.db.close()

    # -- over the API ------------------------------------------------------------------------------

    async def create(self, name: str, created_by: str, default_datastore: DatastoreDocument | None = None) -> dict:
        """Made whole or not at all: with `default_datastore`, a store it cannot reach leaves no
        workspace behind."""
        check_workspace_name(name)
        if name == self.primary.ws.name:
            raise AlreadyExists(f"workspace {name!r} already exists")
        async with self._lock:
            await asyncio.to_thread(self.rows.claim, name, created_by)   # nobody serves it yet
            try:
                await asyncio.to_thread(self._make_store, name)
                await self._serve(name)
                if default_datastore is not None:
                    await asyncio.to_thread(_make_default, self.apps[name], default_datastore)
                await asyncio.to_thread(self.rows.mark, name, READY)
            except BaseException:
                await self._remove(name)
                raise
        view = self.view(name)
        return {**view, "default_datastore": default_datastore.name} if default_datastore is not None else view

    async def delete(self, name: str) -> dict:
        """Stop its replicas, then remove its store and folder; safe to run again after a crash."""
        if name == self.primary.ws.name:
            raise Conflict(f"workspace {name!r} is the one this server was started on: it cannot be deleted "
                           "over the API (stop the server and delete its folder)")
        async with self._lock:
            await asyncio.to_thread(self.rows.get, name)   # NotFound when there is none
            await asyncio.to_thread(self.rows.mark, name, DELETING)
            await self._remove(name)
        return {"deleted": name}

    # -- the steps ---------------------------------------------------------------------------------

    def _make_store(self, name: str) -> None:
        ws = self.workspace(name)
        if ws.path.exists():   # what a create that crashed left
            shutil.rmtree(ws.path)
        ws.path.mkdir(parents=True)
        url = database_url(self.primary.db, ws.path, name)
        create_database(self.primary.db, url)
        Database(url).close()   # its schema, at the newest revision

    async def _serve(self, name: str) -> None:
        ws = self.workspace(name)
        db = await asyncio.to_thread(Database, database_url(self.primary.db, ws.path, name))
        app = None
        try:
            with working_for(name):   # what it starts (the access log's thread) is its own work
                app = await asyncio.to_thread(self._make, ws, db)
            await app.start()
        except BaseException:
            if app is not None:   # a start that failed half way: its log handler and tasks go too
                with contextlib.suppress(Exception):
                    await app.stop(hand_over=False)
            db.close()
            raise
        self.apps[name] = app

    async def _remove(self, name: str) -> None:
        """Whatever exists of the workspace goes, its row last."""
        if name in self.apps:
            await self._let_go(name)
        await self._others_let_go(name)
        ws = self.workspace(name)

        def remove_store() -> None:
            drop_database(self.primary.db, database_url(self.primary.db, ws.path, name))
            shutil.rmtree(ws.path, ignore_errors=True)
            self.rows.remove(name)
        await asyncio.to_thread(remove_store)
        log.info("workspace %r deleted", name)

    async def _others_let_go(self, name: str) -> None:
        """On PostgreSQL, wait (at most LET_GO_WAIT_S) until no other live server serves the
        workspace: each follows the row within FOLLOW_EVERY_S, stops its replicas of it and takes
        its row out of the workspace's `servers`, so none is left using a database about to go."""
        if not self.primary.db.is_postgresql:
            return
        url = database_url(self.primary.db, self.workspace(name).path, name)
        try:
            db = await asyncio.to_thread(Database, url)
        except StorageError:   # never made, or already dropped
            return
        try:
            leases, loop = LeaseStore(db), asyncio.get_running_loop()
            deadline = loop.time() + LET_GO_WAIT_S
            while await asyncio.to_thread(leases.others_alive, self.primary.server_id, 2 * self.primary.lease_s):
                if loop.time() >= deadline:
                    log.warning("workspace %r: deleted while another server still serves it", name)
                    return
                await asyncio.sleep(FOLLOW_EVERY_S / 10)
        finally:
            db.close()

    async def _follow(self) -> None:
        """Serve what other servers created, stop serving what they deleted."""
        while True:
            await asyncio.sleep(FOLLOW_EVERY_S)
            try:
                async with self._lock:
                    rows = {r["name"]: r["state"] for r in await asyncio.to_thread(self.rows.list)}
                    for name in [n for n in self.apps if rows.get(n) != READY]:
                        await self._let_go(name)
                    for name in [n for n, state in rows.items() if state == READY and n not in self.apps]:
                        with contextlib.suppress(NotFound):
                            await self._serve(name)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("could not follow the hosted workspaces")


def _make_default(app: WorkspaceApp, doc: DatastoreDocument) -> None:
    """The new workspace's default datastore, reached first (its container made if missing), as
    `fleet datastore create --default` does."""
    app.stores.datastores.prepare(doc)
    app.stores.datastores.store.create(doc, default=True)
