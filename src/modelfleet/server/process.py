"""Start, stop and find a workspace's server process (used by the SDK and CLI)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

import orjson

from ..errors import ServerUnavailable
from ..workspace import Workspace


@dataclass
class ServerInfo:
    pid: int
    url: str
    token: str
    host: str
    port: int
    started_at: float

    def to_dict(self, secrets: bool = False) -> dict:
        d = {"status": "running", "pid": self.pid, "url": self.url, "host": self.host, "port": self.port,
             "started_at": self.started_at}
        if secrets:
            d["token"] = self.token
        return d


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
    if not _alive(raw.get("pid", -1)) or not _is_our_server(raw["pid"], ws):
        return None
    return ServerInfo(raw["pid"], raw["url"], raw["token"], raw["host"], raw["port"], raw["started_at"])


def healthy(info: ServerInfo, timeout: float = 2.0) -> bool:
    import httpx
    try:
        r = httpx.get(f"{info.url}/api/health", headers={"authorization": f"Bearer {info.token}"},
                      timeout=timeout)
        return r.status_code == 200
    except httpx.HTTPError:
        return False


def start(ws: Workspace, *, host: str = "127.0.0.1", port: int = 0, allow_open: bool = False,
          timeout: float = 60.0) -> tuple[ServerInfo, bool]:
    """Start the server in the background (detached, logging to a file); (info, started_now)."""
    info = read_info(ws)
    if info is not None:
        return info, False
    ws.logs_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "modelfleet.server", "--workspace-name", ws.name,
           "--workspace-path", str(ws.path), "--host", host, "--port", str(port)]
    if allow_open:
        cmd.append("--allow-open-endpoints")
    log_path = ws.logs_dir / "server.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            info = read_info(ws)
            if info is not None and healthy(info):  # another command started it a moment before us
                return info, False
            tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
            raise ServerUnavailable(f"server exited at start: {tail[0]} (log: {log_path})")
        info = read_info(ws)
        if info is not None and info.pid == proc.pid and healthy(info):
            return info, True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    raise ServerUnavailable(f"server did not start within {timeout:.0f}s (log: {log_path})")


def run_foreground(ws: Workspace, *, host: str, port: int, allow_open: bool) -> int:
    from .app import main
    args = ["--workspace-name", ws.name, "--workspace-path", str(ws.path), "--host", host, "--port", str(port)]
    return main(args + (["--allow-open-endpoints"] if allow_open else []))


def stop(ws: Workspace, timeout: float = 20.0) -> ServerInfo | None:
    info = read_info(ws)
    if info is None:
        return None
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


__all__ = ["ServerInfo", "read_info", "start", "stop", "require", "healthy"]
