"""The real control API in this process, for unit tests of the client and the API together.

The API app is the server's own (`server.api.build_api`, and monitoring's routes) over a real
SQLite (or PostgreSQL) store and artifact folder in a temporary workspace; only the replicas are fakes (the controller runs on
tests/fakes.py's backend and clock; its replicas are ready at once). The client is the real `Fleet`, given a transport: httpx's
ASGITransport, run on an event loop of its own thread so that the synchronous client can use it.
No process is started and no port opened.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import httpx

from modelfleet.client import Fleet
from modelfleet.server import first_admin
from modelfleet.server.http import monitoring_api
from modelfleet.server.http.api import build_api
from modelfleet.server.control.controller import Controller
from modelfleet.server.control.stores import Stores
from modelfleet.server.dataplane.routing import Router
from modelfleet.store import Database
from modelfleet.schema.workspace import Workspace

from .fakes import FakeBackend, FakeClock

TOKEN = "unit-test-admin-token"
URL = "http://modelfleet.test"
CALL_TIMEOUT_S = 120.0


class LoopTransport(httpx.BaseTransport):
    """A synchronous httpx transport that hands each request to an ASGI app on `loop`."""

    def __init__(self, app, loop: asyncio.AbstractEventLoop):
        self._asgi = httpx.ASGITransport(app=app)
        self._loop = loop

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()   # an upload's generator is read here, on the caller's thread

        async def call() -> tuple[int, list, bytes]:
            inner = httpx.Request(request.method, request.url, headers=request.headers, content=body)
            response = await self._asgi.handle_async_request(inner)
            return response.status_code, response.headers.raw, await response.aread()

        status, headers, content = asyncio.run_coroutine_threadsafe(call(), self._loop).result(CALL_TIMEOUT_S)
        return httpx.Response(status, headers=headers, content=content)


class InProcessServer:
    def __init__(self, root: Path, database_url: str | None = None, **api_options):
        self.api_options = api_options
        self.ws = Workspace("unit", root / "ws")
        self.ws.path.mkdir(parents=True, exist_ok=True)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="api-loop", daemon=True)
        self._thread.start()
        self.db = Database(database_url or self.ws.db_url)
        self.backend = FakeBackend()

        async def build():
            stores = Stores.of_workspace(self.ws, self.db)
            self.controller = Controller(self.ws, stores, self.backend, Router(), FakeClock())
            await self.controller.start()   # rollouts on fake replicas, ready at once
            first_admin.bootstrap(stores.identities, self.ws.first_admin_token_file)
            api = build_api(self.controller, stores, TOKEN, URL, **self.api_options)
            self.monitoring = monitoring_api.install(api, self.controller, self.db, stores.artifacts, self.ws.path)
            return api
        self.app = asyncio.run_coroutine_threadsafe(build(), self.loop).result()
        self.transport = LoopTransport(self.app, self.loop)

    def fleet(self, token: str = TOKEN, **kw) -> Fleet:
        return Fleet(server=URL, token=token, transport=self.transport, **kw)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.controller.stop(), self.loop).result(CALL_TIMEOUT_S)
        self.controller.collection.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()
        self.db.close()


class InProcessHost:
    """The whole server app in this process (server/app.py's ServerApp: its primary workspace and
    those it hosts, behind the /workspaces/NAME dispatcher), started and stopped through its ASGI
    lifespan. Its workspaces' replicas would be real processes; these tests deploy none."""

    def __init__(self, root: Path, database_url: str | None = None, name: str = "default"):
        from modelfleet.schema import server_settings
        from modelfleet.server.app import ServerApp
        self.ws = Workspace(name, root / name)
        self.ws.path.mkdir(parents=True, exist_ok=True)
        cfg = server_settings.merged(self.ws, {"database_url": database_url} if database_url else {})
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="host-loop", daemon=True)
        self._thread.start()
        self._messages: asyncio.Queue | None = None

        async def build():
            self._messages = asyncio.Queue()
            self.app = ServerApp(self.ws, cfg, 0, TOKEN)
            first_admin.bootstrap(self.app.primary.stores.identities, self.ws.first_admin_token_file)
            self._said: asyncio.Queue = asyncio.Queue()
            self._lifespan = asyncio.ensure_future(self.app({"type": "lifespan"}, self._messages.get, self._said.put))
            await self._messages.put({"type": "lifespan.startup"})
            said = await self._said.get()
            assert said["type"] == "lifespan.startup.complete", said
        asyncio.run_coroutine_threadsafe(build(), self.loop).result(CALL_TIMEOUT_S)
        self.transport = LoopTransport(self.app, self.loop)

    def fleet(self, token: str = TOKEN, workspace: str | None = None) -> Fleet:
        return Fleet(workspace, server=URL, token=token, transport=self.transport)

    def http(self, token: str | None = TOKEN) -> httpx.Client:
        headers = {"authorization": f"Bearer {token}"} if token is not None else {}
        return httpx.Client(base_url=URL, transport=self.transport, headers=headers)

    def close(self) -> None:
        async def stop():
            await self._messages.put({"type": "lifespan.shutdown"})
            await self._lifespan
        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(CALL_TIMEOUT_S)
        self.app.primary.db.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()
