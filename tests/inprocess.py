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
