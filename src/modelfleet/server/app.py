"""The server: one ASGI app on one port for every workspace it hosts (process.py runs it).

    /workspaces/NAME/...   that workspace (its /api, /endpoints, /v2), the prefix taken off
    anything else          the primary: the workspace the server was started on

A workspace nobody hosts here answers as one the caller holds no role on: its pages that need no
token (/docs, /openapi.json, /dashboard) are the same, everything else is 401 without a valid token
and a 404 naming it with one (the primary's control API answers, told by `UNHOSTED` that it is
nobody's), and its scoring paths answer as a workspace without that endpoint. A name tells nothing.

The server's HTTP protocol (dataplane/wire.py) hands scoring requests to what `scoring` names
without ASGI; this app's ASGI routing answers the rest (and, in process, everything).
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import uvicorn

from ..schema.server_settings import ServerSettings
from ..schema.workspace import Workspace
from ..store import Database
from .hosting import HostedWorkspaces
from .http import workspaces_api
from .http.auth import PREFIXED, UNHOSTED
from .http.failed_attempts import FailedAttempts
from .dataplane.gateway import Gateway
from .dataplane.routing import Router, RoutingTable
from .telemetry.hooks import Telemetry
from .dataplane.wire import is_scoring
from .workspace_app import Server, WorkspaceApp

log = logging.getLogger("modelfleet.server")

IDLE_GRACE_S = 1.0  # at a stop, how long an idle keep-alive connection may still bring one request
PREFIX = "/workspaces/"


class ServerApp:
    def __init__(self, ws: Workspace, cfg: ServerSettings, port: int, token: str, joined: bool = False):
        self.server = Server(str(uuid.uuid4()), cfg.url(port), cfg, token, joined,
                             FailedAttempts(cfg.failed_token_attempts_per_minute))
        self.primary = self._routed(WorkspaceApp(ws, Database(cfg.database(ws)), self.server))
        self.hosting = HostedWorkspaces(self.primary, self._hosted, joined)
        self.draining = False
        self._nowhere = Gateway(Router(), Telemetry(), hides_endpoints=True)   # serves no endpoint
        self._nowhere.router.publish(RoutingTable(ready=True))   # ready, as a workspace that has restored all

    def _hosted(self, ws: Workspace, db: Database) -> WorkspaceApp:
        return self._routed(WorkspaceApp(ws, db, self.server, self.primary.stores))

    def scoring(self, path: str) -> tuple[Gateway, str] | None:
        """The gateway that answers a scoring request for `path` (a workspace's, or that of no
        workspace) and the path within its workspace, as `__call__` routes it; None for the
        control API's paths."""
        hosted = within(path)
        if hosted is not None:
            name, rest = hosted
            if not is_scoring(rest):
                return None
            app = self.hosting.app(name)
            return (self._nowhere if app is None else app.gateway), rest
        return (self.primary.gateway, path) if is_scoring(path) else None

    def _routed(self, app: WorkspaceApp) -> WorkspaceApp:
        """The server-wide routes every workspace's API has: the hosted workspaces."""
        workspaces_api.add_routes(app.api, lambda: self.hosting)
        app.api.state.hosts = lambda name: self.hosting.app(name) is not None   # role assignments' scopes
        return app

    async def __call__(self, scope, receive, send):
        kind = scope["type"]
        if kind == "http":
            if self.draining:
                send = _closing(send)
            hosted = within(scope["path"])
            if hosted is not None:
                name, rest = hosted
                app = self.hosting.app(name)
                prefix = PREFIX + name
                scope = {**scope, "path": rest, "raw_path": scope.get("raw_path", b"")[len(prefix):] or None,
                         "root_path": scope.get("root_path", "") + prefix}
                if app is None:   # scoring gets the answers of a workspace without that endpoint
                    if is_scoring(scope["path"]):
                        return await self._nowhere(scope, receive, send)
                    scope[PREFIXED], scope[UNHOSTED] = name, True
                    return await self.primary.api(scope, receive, send)
                if app is not self.primary:   # the primary's name is no secret: /api/identity says it
                    scope[PREFIXED] = name
                return await app(scope, receive, send)
            return await self.primary(scope, receive, send)
        if kind == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    try:
                        await self.primary.start()
                        await self.hosting.start()
                    except Exception as e:
                        log.exception("startup failed")
                        await send({"type": "lifespan.startup.failed", "message": str(e)})
                        return
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    hand_over = await self.primary.others_alive() > 0
                    await self.hosting.stop(hand_over)
                    await self.primary.stop(hand_over)
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        return await self.primary.api(scope, receive, send)


def within(path: str) -> tuple[str, str] | None:
    """(workspace name, the path within it) of a path under /workspaces/NAME; None for any other."""
    if not path.startswith(PREFIX):
        return None
    name, _, rest = path[len(PREFIX):].partition("/")
    return name, "/" + rest


def _closing(send):
    """`send` with `connection: close` on the response: the client must not reuse a connection
    to a server that is stopping (uvicorn then closes it after the response)."""
    async def closing_send(message):
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
        await send(message)
    return closing_send


class DrainingServer(uvicorn.Server):
    """uvicorn, with a stop that cuts no request: on SIGTERM it stops accepting connections,
    answers every request still arriving on an open connection (with `connection: close`), lets
    idle keep-alive connections bring one last request for a moment, then waits (up to the drain
    timeout) for requests in flight before the replicas are stopped. uvicorn alone closes idle
    keep-alive connections at once, racing a client that is sending on one right then."""

    def __init__(self, config: uvicorn.Config, app: ServerApp):
        super().__init__(config)
        self.fleet_app = app

    async def shutdown(self, sockets=None) -> None:
        self.fleet_app.draining = True
        for workspace in [self.fleet_app.primary, *self.fleet_app.hosting.apps.values()]:
            workspace.draining = True   # logs followed end
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + IDLE_GRACE_S
        while not self.force_exit:
            idle = False
            for conn in list(self.server_state.connections):
                cycle = getattr(conn, "cycle", None)
                if cycle is None or cycle.response_complete:
                    idle = True
                else:
                    cycle.keep_alive = False  # close once this response is out
            if not idle or loop.time() >= deadline:
                break
            await asyncio.sleep(0.02)
        await super().shutdown(sockets)
