"""The workspace server process: one port for the control API and the gateway.

Paths under /endpoints/ and /v2/ go straight to the raw-ASGI gateway; everything else to the
control API. Run with `python -m modelfleet.server` (what `fleet server start` launches).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import logging
import os
import secrets
import socket
import sys
import time
from pathlib import Path

import orjson

from ..backends.compute import ComputeBackends
from ..backends.local import LocalBackend
from ..backends.ray import namespace_for
from ..errors import FleetError, StorageError
from ..fsutil import atomic_write
from ..store import Database
from ..workspace import Workspace
from .api import build_api, is_loopback
from .controller import Controller
from .gateway import Gateway
from .routing import Router

log = logging.getLogger("modelfleet.server")


class ServerApp:
    def __init__(self, ws: Workspace, host: str, port: int, force_open: bool = False):
        self.ws = ws
        self.db = Database(ws.db_url)
        self.router = Router()
        self.gateway = Gateway(self.router)
        self.backend = ComputeBackends(LocalBackend(ws.logs_dir), self._compute, ws.logs_dir,
                                       namespace_for(ws.path))
        self.controller = Controller(ws, self.db, self.backend, self.router)
        # A wildcard address is where to listen, not where to connect: local clients use loopback.
        where = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(host, f"[{host}]" if ":" in host else host)
        self.url = f"http://{where}:{port}"
        self.token = secrets.token_urlsafe(32)
        self.api = build_api(self.controller, self.token, self.url, host, force_open)

    def _compute(self, name: str) -> dict | None:
        """A compute's row (address, auth token), read when its first replica starts."""
        from ..store.computes import ComputeStore
        from ..errors import NotFound
        try:
            return ComputeStore(self.db).get(name)
        except NotFound:
            return None

    async def __call__(self, scope, receive, send):
        kind = scope["type"]
        if kind == "http":
            path = scope["path"]
            if path.startswith("/endpoints/") or path == "/v2" or path.startswith("/v2/"):
                return await self.gateway(scope, receive, send)
            return await self.api(scope, receive, send)
        if kind == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    try:
                        self._warming = asyncio.ensure_future(self.backend.warm())
                        await self.controller.start()
                    except Exception as e:
                        log.exception("startup failed")
                        await send({"type": "lifespan.startup.failed", "message": str(e)})
                        return
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await self.controller.stop()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        return await self.api(scope, receive, send)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise FleetError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(ws: Workspace, host: str = "127.0.0.1", port: int = 0, force_open: bool = False) -> None:
    import uvicorn

    ws.run_dir.mkdir(parents=True, exist_ok=True)
    ws.logs_dir.mkdir(parents=True, exist_ok=True)
    lock = open(ws.run_dir / "server.lock", "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise FleetError(f"a server is already running for workspace {ws.name!r}") from None
    loopback = is_loopback(host)
    if not force_open and not loopback:
        log.warning("listening on %s: endpoints with auth_mode none are refused", host)
    sock = _bind(host, port)
    port = sock.getsockname()[1]
    app = ServerApp(ws, host, port, force_open)
    if not force_open and not loopback:
        # Endpoints made open while the server listened on loopback must not become open to
        # the network just because the server restarts on another address.
        open_eps = [e["name"] for e in app.controller.serving.endpoints() if e["spec"].get("auth_mode") == "none"]
        if open_eps:
            sock.close()
            app.db.close()
            raise FleetError(f"refusing to listen on {host}: endpoint {', '.join(open_eps)} has auth_mode none; "
                             "listen on 127.0.0.1, give it auth_mode key, or pass --allow-open-endpoints")
    info = {"pid": os.getpid(), "host": host, "port": port, "url": app.url, "token": app.token,
            "started_at": time.time(), "workspace": ws.name}
    atomic_write(ws.server_file, orjson.dumps(info), mode=0o600)
    with contextlib.suppress(OSError):
        os.chmod(ws.db_path, 0o600)  # it holds endpoint keys
    config = uvicorn.Config(app, loop="uvloop", http="httptools", lifespan="on", log_level="warning",
                            access_log=False, timeout_keep_alive=75, backlog=2048)
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        with contextlib.suppress(OSError):
            current = orjson.loads(ws.server_file.read_bytes())
            if current.get("pid") == os.getpid():
                ws.server_file.unlink()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m modelfleet.server")
    ap.add_argument("--workspace-name", required=True)
    ap.add_argument("--workspace-path", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--allow-open-endpoints", action="store_true")
    args = ap.parse_args(argv)
    ws = Workspace(args.workspace_name, Path(args.workspace_path))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    try:
        serve(ws, args.host, args.port, args.allow_open_endpoints)
    except (FleetError, StorageError) as e:
        print(f"error: {e.message}", file=sys.stderr)
        return 1
    return 0
