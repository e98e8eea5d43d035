"""One workspace served: its store, folder, controller, routing, gateway and control API.

A server runs one of these for the workspace it was started on (the primary) and one for each
workspace hosted beside it (hosting.py). Paths under /endpoints/ and /v2/ go to the gateway
(here through its raw-ASGI entry; the server's HTTP protocol, dataplane/wire.py, calls it
directly); everything else to the control API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
from dataclasses import dataclass

from ..backends.local.backend import LocalBackend
from ..backends.ray.backend import namespace_for
from ..backends.router import ComputeBackends
from ..backends.shared.pool import SharedPool
from ..schema.server_settings import ServerSettings
from ..schema.workspace import Workspace
from ..store import Database
from ..store.leases import LeaseStore
from .control.controller import Controller
from .control.heap import HeapKeeper
from .control.leadership import Leadership
from .control.stores import Stores
from .dataplane.gateway import Gateway
from .dataplane.routing import Router
from .dataplane.wire import is_scoring
from .http import monitoring_api, servers_api
from .http.api import build_api
from .http.failed_attempts import FailedAttempts
from .telemetry.access_log import AccessLog
from .telemetry.hooks import EventLog, Telemetry, working_for
from .telemetry.metrics import Metrics

log = logging.getLogger("modelfleet.server")

PRUNE_EVERY_S = 10.0
DISK_LOW_FRACTION, DISK_LOW_BYTES = 0.10, 1 << 30   # warn below the smaller of the two
SOLE_SERVER_LEASE_S = 3600.0   # on SQLite: renewed every quarter of it


@dataclass(frozen=True)
class Server:
    """What every workspace on one server shares: its identity, address, settings, launcher
    token, and (from the primary's store) who may sign in and the count of failed attempts."""
    id: str
    url: str
    settings: ServerSettings
    token: str
    joined: bool
    attempts: FailedAttempts


class WorkspaceApp:
    def __init__(self, ws: Workspace, db: Database, server: Server, primary: Stores | None = None):
        """`primary`: the primary workspace's stores, for a workspace hosted beside it (its
        identities and activity log are the primary's); None for the primary itself."""
        cfg = server.settings
        self.ws = ws
        self.db = db
        self.server_id = server.id
        self.is_primary = primary is None
        self.router = Router()
        local = LocalBackend(ws.logs_dir)
        shared = SharedPool(local, ws.logs_dir / "shared", cfg.shared_workers, cfg.shared_worker_memory_bytes)
        self.backend = ComputeBackends(local, self._compute, ws.logs_dir, namespace_for(ws.path), shared)
        self.stores = Stores.of_workspace(ws, db, primary, cfg if primary else None)
        self.controller = Controller(ws, self.stores, self.backend, self.router,
                                     after_pass=HeapKeeper().after_pass)
        # a server joined to a workspace folder another one runs from keeps its own access log
        access_name = f"access-{os.getpid()}.log" if server.joined else "access.log"
        access = AccessLog(ws.logs_dir / access_name if cfg.access_log else None, cfg.access_log_max_bytes,
                           cfg.access_log_backups)
        self.telemetry = Telemetry(Metrics(), access, self.controller.clock.now, self.controller.roster)
        self.telemetry.metrics.admission_source = self._admission
        self.telemetry.metrics.state_source = self._replica_counts
        self.telemetry.metrics.usage_source = self.telemetry.replica_usage
        self.gateway = Gateway(self.router, self.telemetry, hides_endpoints=not self.is_primary, workspace=ws.name)
        self.url = server.url if self.is_primary else f"{server.url}/workspaces/{ws.name}"
        self.controller.leading = False   # until the lease says otherwise (the first look is at startup)
        self.leases = LeaseStore(db)
        # SQLite serves one server, whose lease is renewed rarely: each renewal is a commit, and a
        # commit makes the controller read every row again (SQLite's data_version cannot tell).
        self.lease_s = cfg.lease_duration_s if db.is_postgresql else SOLE_SERVER_LEASE_S
        self.leadership = Leadership(self.leases, self.server_id, self.lease_s, self.controller.clock,
                                     self.controller.lead, self.controller.follow)
        self.draining = False
        self.disk_low = False
        self.api = build_api(self.controller, self.stores, server.token, self.url, cfg.host, cfg.allow_open_endpoints,
                             self.telemetry, cfg.metrics_auth, lambda: self.draining,
                             attempts=server.attempts, hosted=not self.is_primary)
        servers_api.add_routes(self.api, self.leases, self.lease_s)   # fleet server list
        # data collectors, data assets, monitors (docs/monitoring.md)
        self.monitoring = monitoring_api.install(self.api, self.controller, db, self.stores.artifacts, ws.path,
                                                 self.telemetry.metrics.registry, self.stores.datastores)
        self._events: EventLog | None = None
        self._pruning: asyncio.Future | None = None

    async def __call__(self, scope, receive, send):
        with working_for(self.ws.name):
            if is_scoring(scope["path"]):
                return await self.gateway(scope, receive, send)
            return await self.api(scope, receive, send)

    async def start(self) -> None:
        with working_for(self.ws.name):   # the tasks started here are the workspace's work
            self._observe(True)
            self._warming = asyncio.ensure_future(self.backend.warm())
            self._pruning = asyncio.ensure_future(self._prune_telemetry())
            await asyncio.to_thread(self.leases.register, self.server_id, self.url, socket.gethostname(), os.getpid())
            await self.leadership.start()
            await self.controller.start()
            self.monitoring.start()

    async def stop(self, hand_over: bool) -> None:
        """Stop serving and stop this server's replicas (with `hand_over`, replicas another server
        of the workspace goes on with are let go)."""
        with working_for(self.ws.name):
            await self._stop(hand_over)

    async def _stop(self, hand_over: bool) -> None:
        if self._pruning is not None:
            self._pruning.cancel()
        await self.monitoring.stop()
        await self.controller.stop(hand_over=hand_over)
        await self.leadership.stop()
        self.controller.collection.close()   # writes what is still queued
        self._observe(False)

    async def others_alive(self) -> int:
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
        """Hook the telemetry into replica state changes and into the warnings logged by this
        workspace's work (for the primary, the server's own too), or unhook it."""
        root = logging.getLogger("modelfleet")
        if on:
            self.controller.listeners.append(self.telemetry.replica_changed)
            self._events = EventLog(self.telemetry, self.ws.name, the_servers=self.is_primary)
            root.addHandler(self._events)
        else:
            with contextlib.suppress(ValueError):
                self.controller.listeners.remove(self.telemetry.replica_changed)
            if self._events is not None:
                root.removeHandler(self._events)
            self.telemetry.close()

    def _compute(self, name: str) -> dict | None:
        """A compute's row (address, auth token), read when its first replica starts."""
        from ..domain.errors import NotFound
        try:
            return self.stores.computes.get(name)
        except NotFound:
            return None
