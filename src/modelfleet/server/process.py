"""The server process: its checks, its socket, its run file, and uvicorn around the ServerApp.
Run with `python -m modelfleet.server` (what `fleet server start` launches)."""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import logging
import os
import resource
import secrets
import socket
import ssl
import sys
import time
from pathlib import Path

import orjson

from ..domain.errors import FleetError, StorageError
from ..files.fsutil import atomic_write
from ..ports import bind_free
from ..schema import server_settings as settings
from ..schema.server_settings import ServerSettings
from ..schema.workspace import Workspace
from . import first_admin
from .app import DrainingServer, ServerApp
from .dataplane.connections import Limits, guarded_protocol
from .dataplane.wire import wire_protocol
from .http.api import is_loopback

log = logging.getLogger("modelfleet.server")


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        if port:
            sock.bind((host, port))
        else:   # the first start's choice is kept: one the OS will not hand to another program meanwhile
            bind_free(sock, host)
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

    changes = dict(changes or {})
    joined = bool(changes.pop("join", False))
    cfg = settings.merged(ws, changes)
    ws.run_dir.mkdir(parents=True, exist_ok=True)
    ws.logs_dir.mkdir(parents=True, exist_ok=True)
    if joined:
        _check_joinable(ws, cfg)
    else:
        lock = open(ws.run_dir / "server.lock", "a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FleetError(f"a server is already running for workspace {ws.name!r}; another one for the same "
                             "workspace: fleet server start --join (on PostgreSQL)") from None
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
    sock = _bind(host, (changes.get("port") if joined else cfg.port) or 0)
    port = sock.getsockname()[1]
    app = ServerApp(ws, cfg, port, token, joined)
    if not cfg.allow_open_endpoints and not loopback:
        # Endpoints made open while the server listened on loopback must not become open to
        # the network just because the server restarts on another address.
        open_eps = app.hosting.open_endpoints()
        if open_eps:
            sock.close()
            app.primary.db.close()
            raise FleetError(f"refusing to listen on {host}: endpoint {', '.join(open_eps)} has auth_mode none; "
                             "listen on 127.0.0.1, give it auth_mode key, or pass --allow-open-endpoints")
    first_token = first_admin.bootstrap(app.primary.stores.identities, ws.first_admin_token_file)
    if first_token is not None:   # the workspace's first start: nobody to sign in as yet
        first_admin.announce(first_token, ws.first_admin_token_file)
    if not joined:   # a joined server changes none of the workspace's settings
        try:
            settings.update(ws, **{**changes, "port": port})  # the address is kept from now on
        except FleetError as e:
            log.warning("could not save the server settings: %s", e.message)
    info = {"pid": os.getpid(), "host": host, "port": port, "url": app.server.url, "token": token,
            "started_at": time.time(), "workspace": ws.name, "ssl_certfile": cfg.ssl_certfile,
            "server_id": app.server.id}
    info_file = joined_file(ws, os.getpid()) if joined else ws.server_file
    info_file.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(info_file, orjson.dumps(info), mode=0o600)
    with contextlib.suppress(OSError):
        os.chmod(ws.db_path, 0o600)  # it holds endpoint keys
    # Connections may take the open files not kept for replicas, logs and the database.
    limits = Limits(cfg.idle_timeout_s, cfg.header_timeout_s, max(16, min(cfg.max_connections,
                                                                           _raise_open_files() - 512)))
    # data-plane requests skip ASGI (dataplane/wire.py); the control API is ASGI as before
    protocol = guarded_protocol(limits, wire_protocol(app))
    config = uvicorn.Config(app, loop="uvloop", http=protocol, lifespan="on", log_level="warning",
                            access_log=False, timeout_keep_alive=cfg.idle_timeout_s, backlog=2048,
                            timeout_graceful_shutdown=cfg.drain_timeout_s,
                            ssl_certfile=cfg.ssl_certfile, ssl_keyfile=cfg.ssl_keyfile)
    server = DrainingServer(config, app)
    try:
        server.run(sockets=[sock])
    finally:
        app.primary.db.close()   # the last connection: SQLite folds its write-ahead log into the file
        with contextlib.suppress(OSError):
            current = orjson.loads(info_file.read_bytes())
            if current.get("pid") == os.getpid():
                info_file.unlink()


def joined_file(ws: Workspace, pid: int) -> Path:
    """Where a server joined to this workspace folder says where it answers (as server.json)."""
    return ws.run_dir / "joined" / f"{pid}.json"


def _check_joinable(ws: Workspace, cfg: ServerSettings) -> None:
    """Several servers share a workspace through PostgreSQL; SQLite keeps one."""
    from ..schema.database_url import engine_url
    if engine_url(cfg.database(ws)).get_backend_name() != "postgresql":
        raise FleetError(f"workspace {ws.name!r} keeps its metadata in SQLite, which serves one server: to run "
                         "several, move it to PostgreSQL (fleet workspace migrate --to postgresql://...)")


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
