"""Ray clusters as compute targets: start and stop the ones modelfleet owns, ask any one how it is.

Nothing here imports ray. `ray start` runs as the `ray` executable of this interpreter's
environment, and status runs in a one-shot subprocess (`python -m modelfleet.backends.ray.status`),
so neither the server nor the CLI loads Ray, and a cluster that hangs cannot hang them.

An owned cluster is one head node on 127.0.0.1 with Ray's token auth on. Everything that makes it
so is in `ray_environment`, which every Ray process modelfleet starts (drivers included) gets.
"""

from __future__ import annotations

import contextlib
import importlib.util
import ipaddress
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

from ...domain.errors import Conflict, FleetError, InvalidInput
from ...files.fsutil import tail_lines
from ...ports import free_ports

RAY_EXTRA = "pip install 'modelfleet[ray]'"
# Short on purpose: Ray puts AF_UNIX sockets under it, and their paths must stay under 107 bytes.
TEMP_ROOT = Path("/tmp")
TEMP_PREFIX = "mf-"
START_TIMEOUT = 120.0
STATUS_TIMEOUT = 30.0


def ray_installed() -> bool:
    return importlib.util.find_spec("ray") is not None


def require_ray(what: str) -> None:
    """Refuse, in one line that says how to fix it, when the `ray` extra is not installed."""
    if not ray_installed():
        raise Conflict(f"{what} needs Ray, which is not installed here: {RAY_EXTRA}")


def ray_executable() -> Path:
    exe = Path(sys.executable).parent / "ray"
    if not exe.is_file():
        raise Conflict(f"no `ray` command next to {sys.executable}: {RAY_EXTRA}")
    return exe


def split_address(address: str) -> tuple[str, int]:
    """`HOST:PORT` (IPv6 hosts in brackets) -> (host, port); InvalidInput naming the value otherwise."""
    host, sep, port = str(address).strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 or "://" in address:
        raise InvalidInput(f"address {address!r}: use HOST:PORT, the address of the cluster's head (GCS), "
                           "e.g. 10.0.0.5:6379")
    return host, int(port)


def on_loopback(address: str) -> bool:
    host, _ = split_address(address)
    if host == "localhost":
        return True
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host).is_loopback
    return False


def ray_environment(auth_token: str | None, address: str | None = None) -> dict[str, str]:
    """The environment every Ray process modelfleet starts needs (add it to os.environ).

    With a cluster on loopback (or no address: an owned one), RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
    keeps Ray's own idea of this node's address on 127.0.0.1; on Linux it otherwise replaces
    127.0.0.1 with the machine's network address and listens there. A driver of a cluster on other
    machines must not have it: those machines have to reach it back.
    """
    env = {"RAY_USAGE_STATS_ENABLED": "0"}
    if address is None or on_loopback(address):
        env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    if auth_token:
        env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=auth_token)
    return env


def _new_temp_dir() -> Path:
    while True:
        path = TEMP_ROOT / f"{TEMP_PREFIX}{secrets.token_hex(4)}"
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)
            return path


def start_local(name: str, root: str | Path, num_cpus: int | None = None, *,
                timeout: float = START_TIMEOUT, address: str | None = None, auth_token: str | None = None,
                temp_dir: str | Path | None = None) -> dict:
    """Start an owned one-node Ray cluster on 127.0.0.1; returns dict(address, auth_token, temp_dir).
    With `address`, `auth_token` and `temp_dir` of a cluster that stopped, it starts again where
    it was, so that endpoints on it find it again.

    Every port Ray would otherwise take by default (and clash on with a second cluster on this
    machine) is a free one chosen here. `ray start` output goes to `root/<name>.log`: it leaves
    daemons behind that would hold a pipe to the caller open.
    """
    exe = ray_executable()
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    log = root / f"{name}.log"
    temp_dir = Path(temp_dir) if temp_dir else _new_temp_dir()
    token = auth_token or secrets.token_hex(32)
    names = ["port", "node-manager-port", "object-manager-port", "dashboard-port", "dashboard-agent-listen-port",
             "dashboard-agent-grpc-port", "metrics-export-port", "runtime-env-agent-port"]
    client_server = importlib.util.find_spec("grpc") is not None  # Ray starts one on :10001 when it can
    if client_server:
        names.append("ray-client-server-port")
    *ports, monitor_port = free_ports(len(names) + 1)
    if address is not None:
        ports[0] = split_address(address)[1]
    address = f"127.0.0.1:{ports[0]}"
    args = [str(exe), "start", "--head", "--node-ip-address=127.0.0.1", f"--temp-dir={temp_dir}",
            "--include-dashboard=false", "--disable-usage-stats", f"--num-cpus={num_cpus or os.cpu_count() or 1}",
            # workers take ports from the OS instead of a fixed range two clusters would share
            "--min-worker-port=0", "--max-worker-port=0",
            *(f"--{n}={p}" for n, p in zip(names, ports, strict=True))]
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH")}
    env.update(ray_environment(token), AUTOSCALER_METRIC_PORT=str(monitor_port))
    with open(log, "ab") as out:
        out.write(f"$ {' '.join(args)}\n".encode())
        out.flush()
        try:
            rc = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                                timeout=timeout, start_new_session=True).returncode
        except subprocess.TimeoutExpired:
            rc = None
    if rc != 0:
        stop_local(temp_dir)
        tail = tail_lines(log, 20)
        last = next((line.strip() for line in reversed(tail) if line.strip()), "")
        why = f"exit status {rc}: {last}" if rc is not None else f"no answer in {timeout:.0f}s"
        raise FleetError(f"ray start failed for compute {name!r} ({why}); see {log}", detail="\n".join(tail))
    return {"address": address, "auth_token": token, "temp_dir": str(temp_dir)}


def _mentions(args: list[str], temp_dir: str) -> bool:
    return any(a == temp_dir or a.endswith("=" + temp_dir) or temp_dir + "/" in a for a in args)


def cluster_processes(temp_dir: str | Path) -> list:
    """The live processes of the cluster whose Ray directory is `temp_dir` (psutil.Process list).

    A process belongs to it when its command line names the directory or it holds a file open
    there (Ray renames agents and workers, `ray::IDLE`, but their output goes to its logs), and so
    does every descendant of one that does.
    """
    import psutil
    temp_dir = str(Path(temp_dir)).rstrip("/")
    found: dict[int, psutil.Process] = {}
    for p in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if _mentions(p.info["cmdline"] or [], temp_dir) or any(
                    f.path.startswith(temp_dir + "/") for f in p.open_files()):
                found[p.pid] = p
    for p in list(found.values()):
        with contextlib.suppress(psutil.Error):
            for child in p.children(recursive=True):
                found.setdefault(child.pid, child)
    found.pop(os.getpid(), None)
    return list(found.values())


def stop_local(temp_dir: str | Path, *, timeout: float = 3.0, remove: bool = True) -> list[int]:
    """Stop exactly one owned cluster, by pid: SIGTERM, then SIGKILL what is left after `timeout`.

    Never `ray stop`, which stops every Ray cluster of this machine. The wait is short: the GCS
    often outlives a SIGTERM by more than 15 s, and a dev cluster being removed keeps no state
    worth it. Returns the pids it stopped; with `remove`, the cluster's directory goes too.
    """
    import psutil
    procs = cluster_processes(temp_dir)
    stopped = {p.pid for p in procs}
    left = procs
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in left:
            with contextlib.suppress(psutil.Error):
                p.send_signal(sig)
        _, left = psutil.wait_procs(left, timeout=timeout)
        if not left:
            break
    late = cluster_processes(temp_dir)  # workers the raylet started while it was being stopped
    for p in late:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(late, timeout=timeout)
    stopped |= {p.pid for p in late}
    path = Path(temp_dir)
    if remove and path.name.startswith(TEMP_PREFIX):  # never a directory this module did not make
        shutil.rmtree(path, ignore_errors=True)
    return sorted(stopped)


def _unhealthy(address: str, error: str) -> dict:
    return {"address": address, "nodes": [], "cpus": 0, "memory_bytes": 0, "healthy": False, "error": error}


def status(address: str, auth_token: str | None, timeout: float = STATUS_TIMEOUT) -> dict:
    """How the cluster at `address` is: dict(nodes=[{node_id, address, alive, cpus, memory_bytes}],
    cpus, memory_bytes, healthy, error). An unreachable cluster is healthy=False with the reason,
    never an exception."""
    host, port = split_address(address)
    try:
        socket.create_connection((host, port), timeout=min(5.0, timeout)).close()
    except OSError as e:
        return _unhealthy(address, f"cannot reach the Ray cluster at {address}: {e.strerror or e}")
    if not ray_installed():
        return _unhealthy(address, f"Ray is not installed here: {RAY_EXTRA}")
    # Ray retries a refused connection for 20 s by default; an answer takes well under 3.
    env = {**os.environ, **ray_environment(auth_token, address), "RAY_gcs_server_port_wait_time_s": "3"}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            subprocess.run([sys.executable, "-m", "modelfleet.backends.ray.status", address], stdin=subprocess.DEVNULL,
                           stdout=out, stderr=err, env=env, timeout=timeout, start_new_session=True)
        except subprocess.TimeoutExpired:
            return _unhealthy(address, f"no answer from the Ray cluster at {address} within {timeout:.0f}s")
        out.seek(0)
        err.seek(0)
        lines = [x for x in out.read().splitlines() if x.strip()]
        stderr = err.read().decode(errors="replace")
    try:
        answer = orjson.loads(lines[-1])
    except (IndexError, orjson.JSONDecodeError):
        last = stderr.strip().splitlines()[-1:] or ["no output"]
        return _unhealthy(address, f"the status check of {address} failed: {last[0]}")
    if "error" in answer:
        error = answer["error"]
        if "InvalidAuthToken" in stderr or "Unauthenticated" in stderr:
            error = (f"the Ray cluster at {address} refused the auth token "
                     f"({'a wrong one' if auth_token else 'none was given'})")
        return _unhealthy(address, error)
    nodes = answer["nodes"]
    alive = [n for n in nodes if n["alive"]]
    return {"address": address, "nodes": nodes, "cpus": sum(n["cpus"] for n in alive),
            "memory_bytes": sum(n["memory_bytes"] for n in alive), "healthy": bool(alive),
            "error": None if alive else "the cluster has no live node"}
