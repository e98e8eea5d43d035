"""The workspace server process: one port for the control API and the gateway.

Paths under /endpoints/ and /v2/ go straight to the raw-ASGI gateway; everything else to the
control API. Run with `python -m modelfleet.server` (what `fleet server start` launches).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import resource
import secrets
import shutil
import socket
import ssl
import sys
import time
from pathlib import Path

import orjson
import uvicorn

from ..backends.router import ComputeBackends
from ..backends.local.backend import LocalBackend
from ..backends.ray.backend import namespace_for
from ..backends.shared.pool import SharedPool
from ..domain.errors import FleetError, StorageError
from ..files.fsutil import atomic_write
from ..store import Database
from ..schema.workspace import Workspace
from ..schema import server_settings as settings
from .telemetry.access_log import AccessLog
from .http.api import build_api, is_loopback
from .dataplane.connections import Limits, guarded_protocol
from .control.controller import Controller
from .control.stores import Stores
from .dataplane.gateway import Gateway
from .control.heap import HeapKeeper
from .telemetry.metrics import Metrics
from .dataplane.routing import Router
from ..schema.server_settings import ServerSettings
from .telemetry.hooks import EventLog, Telemetry
from .http import monitoring_api

log = logging.getLogger("modelfleet.server")

PRUNE_EVERY_S = 10.0
DISK_LOW_FRACTION, DISK_LOW_BYTES = 0.10, 1 << 30   # warn below the smaller of the two
IDLE_GRACE_S = 1.0  # at a stop, how long an idle keep-alive connection may still bring one request


class ServerApp:
    def __init__(self, ws: Workspace, cfg: ServerSettings, port: int, token: str):
        self.ws = ws
        self.cfg = cfg
        self.db = Database(cfg.database(ws))
        self.router = Router()
        local = LocalBackend(ws.logs_dir)
        shared = SharedPool(local, ws.logs_dir / "shared", cfg.shared_workers, cfg.shared_worker_memory_bytes)
        self.backend = ComputeBackends(local, self._compute, ws.logs_dir, namespace_for(ws.path), shared)
        self.stores = Stores.of_workspace(ws, self.db)
        self.controller = Controller(ws, self.stores, self.backend, self.router,
                                     after_pass=HeapKeeper().after_pass)
        access = AccessLog(ws.logs_dir / "access.log" if cfg.access_log else None, cfg.access_log_max_bytes,
                           cfg.access_log_backups)
        self.telemetry = Telemetry(Metrics(), access, self.controller.clock.now, self.controller.roster)
        self.telemetry.metrics.admission_source = self._admission
        self.telemetry.metrics.state_source = self._replica_counts
        self.telemetry.metrics.usage_source = self.telemetry.replica_usage
        self.gateway = Gateway(self.router, self.telemetry)
        self.url = cfg.url(port)
        self.token = token
        self.draining = False
        self.disk_low = False
        self.api = build_api(self.controller, self.stores, self.token, self.url, cfg.host, cfg.allow_open_endpoints,
                             self.telemetry, cfg.metrics_auth, lambda: self.draining)
        # data collectors, data assets, monitors (docs/monitoring.md)
        self.monitoring = monitoring_api.install(self.api, self.controller, self.db, self.stores.artifacts, ws.path,
                                                 self.telemetry.metrics.registry)

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
            path = scope["path"]
            if path.startswith("/endpoints/") or path == "/v2" or path.startswith("/v2/"):
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
                    await self.controller.stop()
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


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        hint = ("; another program has it: choose another with fleet server start --port N (0: any free port)"
                if e.errno == errno.EADDRINUSE else "")
        raise FleetError(f"cannot listen on {host}:{port}: {e.strerror}{hint}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _raise_open_files() -> int:
    """Lift the soft limit on open files to the hard one (each connection and replica takes
    some); the limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 1 << 20) if hard != resource.RLIM_INFINITY else 1 << 20
    if soft != resource.RLIM_INFINITY and soft < want:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def _admin_token(cfg: ServerSettings) -> str:
    """A new token per start, unless the operator keeps one in a file (for Prometheus and the
    dashboard of a long-running server)."""
    if cfg.admin_token_file is None:
        return secrets.token_urlsafe(32)
    try:
        token = Path(cfg.admin_token_file).read_text().strip()
    except OSError as e:
        raise FleetError(f"admin_token_file {cfg.admin_token_file!r}: {e.strerror}") from None
    if len(token) < 16 or any(c.isspace() for c in token):
        raise FleetError(f"admin_token_file {cfg.admin_token_file!r}: the token must be one word of "
                         "at least 16 characters")
    return token


def _check_tls(cfg: ServerSettings) -> None:
    if cfg.tls:
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cfg.ssl_certfile, cfg.ssl_keyfile)
        except (ssl.SSLError, OSError) as e:
            raise FleetError(f"cannot use ssl_certfile {cfg.ssl_certfile!r} with ssl_keyfile "
                             f"{cfg.ssl_keyfile!r}: {getattr(e, 'reason', None) or e}") from None


def serve(ws: Workspace, changes: dict | None = None) -> None:
    """Serve with the workspace's saved settings plus `changes`; the changes are saved once the
    server has its socket (a start that fails changes nothing)."""
    import uvicorn

    cfg = settings.merged(ws, changes or {})
    ws.run_dir.mkdir(parents=True, exist_ok=True)
    ws.logs_dir.mkdir(parents=True, exist_ok=True)
    lock = open(ws.run_dir / "server.lock", "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise FleetError(f"a server is already running for workspace {ws.name!r}") from None
    host = cfg.host
    loopback = is_loopback(host)
    if not loopback and not cfg.tls and not cfg.allow_plain_http:
        raise FleetError(f"refusing to listen on {host} without TLS: keys and the admin token would cross the "
                         "network in clear; give --ssl-certfile and --ssl-keyfile (or --allow-plain-http "
                         "behind a TLS proxy)")
    if not cfg.allow_open_endpoints and not loopback:
        log.warning("listening on %s: endpoints with auth_mode none are refused", host)
    _check_tls(cfg)
    token = _admin_token(cfg)
    sock = _bind(host, cfg.port or 0)
    port = sock.getsockname()[1]
    app = ServerApp(ws, cfg, port, token)
    if not cfg.allow_open_endpoints and not loopback:
        # Endpoints made open while the server listened on loopback must not become open to
        # the network just because the server restarts on another address.
        open_eps = [e["name"] for e in app.stores.serving.endpoints() if e["spec"].get("auth_mode") == "none"]
        if open_eps:
            sock.close()
            app.db.close()
            raise FleetError(f"refusing to listen on {host}: endpoint {', '.join(open_eps)} has auth_mode none; "
                             "listen on 127.0.0.1, give it auth_mode key, or pass --allow-open-endpoints")
    try:
        settings.update(ws, **{**(changes or {}), "port": port})  # the address is kept from now on
    except FleetError as e:
        log.warning("could not save the server settings: %s", e.message)
    info = {"pid": os.getpid(), "host": host, "port": port, "url": app.url, "token": token,
            "started_at": time.time(), "workspace": ws.name, "ssl_certfile": cfg.ssl_certfile}
    atomic_write(ws.server_file, orjson.dumps(info), mode=0o600)
    with contextlib.suppress(OSError):
        os.chmod(ws.db_path, 0o600)  # it holds endpoint keys
    # Connections may take the open files not kept for replicas, logs and the database.
    limits = Limits(cfg.idle_timeout_s, cfg.header_timeout_s, max(16, min(cfg.max_connections,
                                                                           _raise_open_files() - 512)))
    config = uvicorn.Config(app, loop="uvloop", http=guarded_protocol(limits), lifespan="on", log_level="warning",
                            access_log=False, timeout_keep_alive=cfg.idle_timeout_s, backlog=2048,
                            timeout_graceful_shutdown=cfg.drain_timeout_s,
                            ssl_certfile=cfg.ssl_certfile, ssl_keyfile=cfg.ssl_keyfile)
    server = DrainingServer(config, app)
    try:
        server.run(sockets=[sock])
    finally:
        app.db.close()   # the last connection: SQLite folds its write-ahead log into the file
        with contextlib.suppress(OSError):
            current = orjson.loads(ws.server_file.read_bytes())
            if current.get("pid") == os.getpid():
                ws.server_file.unlink()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m modelfleet.server")
    ap.add_argument("--workspace-name", required=True)
    ap.add_argument("--workspace-path", required=True)
    ap.add_argument("--settings", default="{}", help="JSON: setting changes, saved once the server listens")
    args = ap.parse_args(argv)
    ws = Workspace(args.workspace_name, Path(args.workspace_path))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    try:
        serve(ws, orjson.loads(args.settings))
    except (FleetError, StorageError) as e:
        print(f"error: {e.message}", file=sys.stderr)
        return 1
    return 0
