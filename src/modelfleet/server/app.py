"""The workspace server: one ASGI app for the control API and the gateway (process.py runs it).

Paths under /endpoints/ and /v2/ go to the gateway (over the server's own HTTP protocol,
dataplane/wire.py, or its raw-ASGI entry); everything else to the control API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import uuid

import uvicorn

from ..backends.router import ComputeBackends
from ..backends.local.backend import LocalBackend
from ..backends.ray.backend import namespace_for
from ..backends.shared.pool import SharedPool
from ..store import Database
from ..schema.workspace import Workspace
from .telemetry.access_log import AccessLog
from .http.api import build_api
from .control.controller import Controller
from .control.leadership import Leadership
from ..store.leases import LeaseStore
from .control.stores import Stores
from .dataplane.gateway import Gateway
from .dataplane.wire import is_dataplane
from .control.heap import HeapKeeper
from .telemetry.metrics import Metrics
from .dataplane.routing import Router
from ..schema.server_settings import ServerSettings
from .telemetry.hooks import EventLog, Telemetry
from .http import monitoring_api, servers_api

log = logging.getLogger("modelfleet.server")

PRUNE_EVERY_S = 10.0
DISK_LOW_FRACTION, DISK_LOW_BYTES = 0.10, 1 << 30   # warn below the smaller of the two
SOLE_SERVER_LEASE_S = 3600.0   # on SQLite: renewed every quarter of it
IDLE_GRACE_S = 1.0  # at a stop, how long an idle keep-alive connection may still bring one request


class ServerApp:
    def __init__(self, ws: Workspace, cfg: ServerSettings, port: int, token: str, joined: bool = False):
        self.ws = ws
        self.cfg = cfg
        self.db = Database(cfg.database(ws))
        self.server_id = str(uuid.uuid4())
        self.router = Router()
        local = LocalBackend(ws.logs_dir)
        shared = SharedPool(local, ws.logs_dir / "shared", cfg.shared_workers, cfg.shared_worker_memory_bytes)
        self.backend = ComputeBackends(local, self._compute, ws.logs_dir, namespace_for(ws.path), shared)
        self.stores = Stores.of_workspace(ws, self.db)
        self.controller = Controller(ws, self.stores, self.backend, self.router,
                                     after_pass=HeapKeeper().after_pass)
        # a server joined to a workspace folder another one runs from keeps its own access log
        access_name = f"access-{os.getpid()}.log" if joined else "access.log"
        access = AccessLog(ws.logs_dir / access_name if cfg.access_log else None, cfg.access_log_max_bytes,
                           cfg.access_log_backups)
        self.telemetry = Telemetry(Metrics(), access, self.controller.clock.now, self.controller.roster)
        self.telemetry.metrics.admission_source = self._admission
        self.telemetry.metrics.state_source = self._replica_counts
        self.telemetry.metrics.usage_source = self.telemetry.replica_usage
        self.gateway = Gateway(self.router, self.telemetry)
        self.url = cfg.url(port)
        self.token = token
        self.controller.leading = False   # until the lease says otherwise (the first look is at startup)
        self.leases = LeaseStore(self.db)
        # SQLite serves one server, whose lease is renewed rarely: each renewal is a commit, and a
        # commit makes the controller read every row again (SQLite's data_version cannot tell).
        self.lease_s = cfg.lease_duration_s if self.db.is_postgresql else SOLE_SERVER_LEASE_S
        self.leadership = Leadership(self.leases, self.server_id, self.lease_s, self.controller.clock,
                                     self.controller.lead, self.controller.follow)
        self.draining = False
        self.disk_low = False
        self.api = build_api(self.controller, self.stores, self.token, self.url, cfg.host, cfg.allow_open_endpoints,
                             self.telemetry, cfg.metrics_auth, lambda: self.draining,
                             cfg.failed_token_attempts_per_minute)
        servers_api.add_routes(self.api, self.leases, self.lease_s)   # fleet server list
        # data collectors, data assets, monitors (docs/monitoring.md)
        self.monitoring = monitoring_api.install(self.api, self.controller, self.db, self.stores.artifacts, ws.path,
                                                 self.telemetry.metrics.registry, self.stores.datastores)

    async def _others_alive(self) -> int:
        """Other servers of the workspace that go on after this one stops (0 when unknown)."""
        if not self.db.is_postgresql:
            return 0   # SQLite serves one server
        try:
            return await asyncio.wait_for(asyncio.to_thread(self.leases.others_alive, self.server_id,
                                                            2 * self.lease_s), 5.0)
        except Exception:
            return 0

    def _admission(self):
        for ep in self.router.table.endpoints.values():
            for dep in ep.deployments.values():
                yield ep.name, dep.name, dep.admission.inflight, len(dep.admission.waiters)

    def _replica_counts(self):
        """Every deployment of an endpoint, and any other that still has replicas (draining after
        its deletion), with its replicas by state."""
        listed = [(ep.name, d) for ep in self.router.table.endpoints.values() for d in ep.deployments]
        for endpoint, name in dict.fromkeys([*listed, *self.controller.roster.deployments()]):
            yield endpoint, name, self.controller.queries.replica_counts(endpoint, name)

    async def _prune_telemetry(self) -> None:
        while True:
            self._check_disk()
            await asyncio.sleep(PRUNE_EVERY_S)
            live = {(ep.name, d) for ep in self.router.table.endpoints.values() for d in ep.deployments}
            self.telemetry.prune(live | {(ep, "") for ep in self.router.table.endpoints})
            self.controller.collection.forget(live)   # deleted deployments' collectors

    def _check_disk(self) -> None:
        """Warn (once, in server.log and the events) when the workspace's disk is nearly full: at
        full, replicas and the server lose log lines but keep serving, while registering models
        and changing deployments fail."""
        try:
            usage = shutil.disk_usage(self.ws.path)
        except OSError:
            return
        low = usage.free < min(usage.total * DISK_LOW_FRACTION, DISK_LOW_BYTES)
        if low and not self.disk_low:
            log.warning("the workspace's disk is nearly full: %d MiB free of %d MiB at %s; when it is full, logs "
                        "lose lines and registering models or changing deployments fails (serving goes on)",
                        usage.free >> 20, usage.total >> 20, self.ws.path)
        elif self.disk_low and not low:
            log.warning("the workspace's disk has room again: %d MiB free", usage.free >> 20)
        self.disk_low = low

    def _observe(self, on: bool) -> None:
        """Hook the telemetry into replica state changes and the server's warnings (or unhook it)."""
        root = logging.getLogger("modelfleet")
        if on:
            self.controller.listeners.append(self.telemetry.replica_changed)
            self._events = EventLog(self.telemetry)
            root.addHandler(self._events)
        else:
            with contextlib.suppress(ValueError):
                self.controller.listeners.remove(self.telemetry.replica_changed)
            root.removeHandler(self._events)
            self.telemetry.close()

    def _compute(self, name: str) -> dict | None:
        """A compute's row (address, auth token), read when its first replica starts."""
        from ..domain.errors import NotFound
        try:
            return self.stores.computes.get(name)
        except NotFound:
            return None

    async def __call__(self, scope, receive, send):
        kind = scope["type"]
        if kind == "http":
            if self.draining:
                send = _closing(send)
            if is_dataplane(scope["path"]):
                return await self.gateway(scope, receive, send)
            return await self.api(scope, receive, send)
        if kind == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    try:
                        self._observe(True)
                        self._warming = asyncio.ensure_future(self.backend.warm())
                        self._pruning = asyncio.ensure_future(self._prune_telemetry())
                        await asyncio.to_thread(self.leases.register, self.server_id, self.url,
                                                socket.gethostname(), os.getpid())
                        await self.leadership.start()
                        await self.controller.start()
                        self.monitoring.start()
                    except Exception as e:
                        log.exception("startup failed")
                        await send({"type": "lifespan.startup.failed", "message": str(e)})
                        return
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    self._pruning.cancel()
                    await self.monitoring.stop()
                    others = await self._others_alive()
                    await self.controller.stop(hand_over=others > 0)
                    await self.leadership.stop()
                    self.controller.collection.close()   # writes what is still queued
                    self._observe(False)
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        return await self.api(scope, receive, send)


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
