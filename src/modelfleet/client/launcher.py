"""The launcher: start, stop and find the server of a workspace on this machine.

It reads only the workspace's run/server.json (address, pid, admin token; 0600, so only the
folder's owner can) and its saved server settings, never the database: everything else the
client asks the server for, over HTTP.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass

import orjson

from ..domain.errors import ServerUnavailable, Unauthorized
from ..schema.workspace import Workspace

SERVER_LOG_MAX_BYTES = 16 * 2**20


@dataclass
class ServerInfo:
    pid: int
    url: str
    token: str
    host: str
    port: int
    started_at: float
    ssl_certfile: str | None = None   # the server's certificate: what its clients here trust

    def to_dict(self, secrets: bool = False) -> dict:
        d = {"status": "running", "pid": self.pid, "url": self.url, "host": self.host, "port": self.port,
             "started_at": self.started_at}
        if secrets:
            d["token"] = self.token
        return d


def _server_args(ws: Workspace, changes: dict | None) -> list[str]:
    return [sys.executable, "-m", "modelfleet.server", "--workspace-name", ws.name,
            "--workspace-path", str(ws.path), "--settings", orjson.dumps(changes or {}).decode()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is not alive
    with contextlib.suppress(OSError):
        with open(f"/proc/{pid}/stat") as f:
            if f.read().split(") ", 1)[1].startswith("Z"):
                return False
    return True


def _is_our_server(pid: int, ws: Workspace) -> bool:
    """The pid in server.json may have been reused by an unrelated process after a crash: only
    the process holding this workspace's server.lock counts (so `stop` never signals a stranger)."""
    lock = str((ws.run_dir / "server.lock").resolve())
    fd_dir = f"/proc/{pid}/fd"
    try:
        fds = os.listdir(fd_dir)
    except FileNotFoundError:
        return False
    except OSError:
        return True  # no /proc to ask (not Linux, or not ours to read): trust the pid
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.readlink(f"{fd_dir}/{fd}") == lock:
                return True
    return False


def read_info(ws: Workspace) -> ServerInfo | None:
    """The running server, or None (a file left by a killed server does not count)."""
    try:
        raw = orjson.loads(ws.server_file.read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return None
    except PermissionError:
        raise Unauthorized(f"{ws.server_file}: only the owner of the workspace folder can read its server's "
                           "address and admin token (elsewhere: FLEET_SERVER and FLEET_TOKEN)") from None
    if not _alive(raw.get("pid", -1)) or not _is_our_server(raw["pid"], ws):
        return None
    return ServerInfo(raw["pid"], raw["url"], raw["token"], raw["host"], raw["port"], raw["started_at"],
                      raw.get("ssl_certfile"))


def verify(info: ServerInfo | None) -> ssl.SSLContext | bool:
    """What a client on this machine trusts when it talks to the workspace's own server: over
    TLS, exactly the certificate the server presents (read from the file it was started with),
    whatever name it was issued for; the system's CAs otherwise."""
    if info is None or not info.ssl_certfile:
        return True
    ctx = ssl.create_default_context(cafile=info.ssl_certfile)
    ctx.check_hostname = False  # local clients connect to 127.0.0.1, the certificate names the host
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # trust the leaf itself, not only a root
    return ctx


def healthy(info: ServerInfo, timeout: float = 2.0) -> bool:
    import httpx
    try:
        r = httpx.get(f"{info.url}/api/health", headers={"authorization": f"Bearer {info.token}"},
                      timeout=timeout, verify=verify(info))
        return r.status_code == 200
    except httpx.HTTPError:
        return False


def _lock_held(ws: Workspace) -> bool:
    """Whether a server process holds the workspace's lock: running, or starting and not yet
    listening (several commands that start the server at once: one wins, the others wait for it)."""
    try:
        with open(ws.run_dir / "server.lock", "rb") as lock:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


def start(ws: Workspace, changes: dict | None = None, *, timeout: float = 60.0) -> tuple[ServerInfo, bool]:
    """Start the server in the background (detached, logging to a file) with the workspace's
    settings plus `changes` (saved once it listens); (info, started_now)."""
    info = read_info(ws)
    if info is not None:
        return info, False
    from ..schema import server_settings as settings  # pydantic: imported when a start needs it, not by every command
    settings.merged(ws, changes or {})  # a bad value is an error here, before anything starts
    try:
        ws.logs_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ServerUnavailable(f"cannot start the server of workspace {ws.name!r}: {ws.logs_dir}: "
                                f"{e.strerror or e}") from None
    cmd = _server_args(ws, changes)
    log_path = ws.logs_dir / "server.log"
    with contextlib.suppress(OSError):  # rotated at each start once it is large (one old file kept)
        if log_path.stat().st_size > SERVER_LOG_MAX_BYTES:
            os.replace(log_path, log_path.with_name("server.log.1"))
    try:
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True, close_fds=True)
    except OSError as e:   # a read-only or full workspace: one line, nothing started
        raise ServerUnavailable(f"cannot start the server of workspace {ws.name!r}: {e.filename or ws.path}: "
                                f"{e.strerror or e}") from None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        exited = proc.poll() is not None
        info = read_info(ws)
        if info is not None and (exited or info.pid == proc.pid) and healthy(info):
            return info, info.pid == proc.pid   # ours, or another command's that started a moment before
        if exited and not _lock_held(ws):     # not another server still starting: ours failed
            tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
            raise ServerUnavailable(f"server exited at start: {tail[0]} (log: {log_path})")
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    raise ServerUnavailable(f"server did not start within {timeout:.0f}s (log: {log_path})")


def join(ws: Workspace, changes: dict | None = None, *, timeout: float = 60.0) -> ServerInfo:
    """Start another server for this workspace folder (detached, logging to a file of its own),
    beside the one running: both share its PostgreSQL database, one runs the controller (docs/production.md).
    Its port is `changes["port"]` or a free one; it changes none of the saved settings."""
    from ..schema import server_settings as settings
    settings.merged(ws, changes or {})   # a bad value is an error here, before anything starts
    ws.logs_dir.mkdir(parents=True, exist_ok=True)
    log_path = ws.logs_dir / f"server-joined-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(_server_args(ws, {**(changes or {}), "join": True}), stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
    info_file = ws.run_dir / "joined" / f"{proc.pid}.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
            raise ServerUnavailable(f"server exited at start: {tail[0]} (log: {log_path})")
        with contextlib.suppress(FileNotFoundError, orjson.JSONDecodeError):
            raw = orjson.loads(info_file.read_bytes())
            info = ServerInfo(raw["pid"], raw["url"], raw["token"], raw["host"], raw["port"], raw["started_at"],
                              raw.get("ssl_certfile"))
            if healthy(info):
                return info
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    raise ServerUnavailable(f"the joined server did not start within {timeout:.0f}s (log: {log_path})")


def run_foreground(ws: Workspace, changes: dict | None = None) -> int:
    """Become the server (this process's pid, signals and output): for systemd or a container."""
    from ..schema import server_settings as settings
    # a bad value is an error here, before anything starts (`join` is how it starts, not a setting)
    settings.merged(ws, {k: v for k, v in (changes or {}).items() if k != "join"})
    args = _server_args(ws, changes)
    os.execv(args[0], args)
    return 1  # not reached


def stop(ws: Workspace, timeout: float | None = None) -> ServerInfo | None:
    """SIGTERM (the server drains requests in flight), SIGKILL if it outlives the drain."""
    info = read_info(ws)
    if info is None:
        return None
    if timeout is None:
        from ..schema import server_settings as settings
        timeout = settings.load(ws).drain_timeout_s + 10.0
    with contextlib.suppress(ProcessLookupError):
        os.kill(info.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(info.pid):
        time.sleep(0.05)
    if _alive(info.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(info.pid, signal.SIGKILL)
    return info


def require(ws: Workspace) -> ServerInfo:
    info = read_info(ws)
    if info is None:
        raise ServerUnavailable(f"the server of workspace {ws.name!r} is not running; start it with: fleet server start")
    return info


__all__ = ["ServerInfo", "read_info", "start", "stop", "require", "healthy", "verify"]
