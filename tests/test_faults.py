"""An operator's bad day, with real processes: the warm parent killed, a run() that hangs, a
stopped replica, a full disk, a flood of idle connections, no file descriptors left, writers
racing on one deployment. docs/reliability.md lists each fault with its test.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil
import pytest

from modelfleet.domain.errors import PreconditionFailed

from .conftest import IRIS_ROWS
from .helpers import Load, alive, on_a_small_disk, scoring_code, wait_until

FLEET = str(Path(sys.executable).with_name("fleet"))
IRIS_BODY = json.dumps({"data": IRIS_ROWS}).encode()


def _scoring(fleet, endpoint: str) -> tuple[str, str]:
    return fleet.online_endpoints.get(endpoint)["scoring_uri"], fleet.online_endpoints.get_keys(endpoint)["primaryKey"]


def _ready_pids(fleet, endpoint: str, name: str = "blue") -> list[int]:
    return sorted(r["pid"] for r in fleet.online_deployments.get(name, endpoint)["replicas"] if r["state"] == "ready")


def _oom_score_adj(pid: int) -> int:
    return int(Path(f"/proc/{pid}/oom_score_adj").read_text())


def _zygote(server: psutil.Process) -> psutil.Process:
    return next(c for c in server.children() if c.name() == "mf-zygote" and c.status() != psutil.STATUS_ZOMBIE)


def _deploy_iris(f, models_dir: Path, endpoint: str, **settings) -> None:
    """Model iris:1 as deployment blue of a new endpoint."""
    f.models.register("iris", models_dir / "iris", "1")
    f.online_endpoints.create(endpoint)
    f.online_deployments.create("blue", endpoint, "iris:1", **settings)


# -- the warm parent killed ------------------------------------------------------------------------

@pytest.mark.slow
def test_killing_the_zygote_under_load_fails_no_request_and_its_replicas_outlive_it(fleet, models_dir):
    f = fleet
    _deploy_iris(f, models_dir, "zyg-ep", instance_count=2)
    server = psutil.Process(f.server.status()["pid"])
    zygote = _zygote(server)
    replicas = _ready_pids(f, "zyg-ep")
    # Under memory pressure the kernel kills a replica first, then the zygote, the server last.
    assert [_oom_score_adj(p) for p in replicas] == [800, 800] and _oom_score_adj(zygote.pid) == 500
    assert _oom_score_adj(server.pid) == _oom_score_adj(os.getpid())   # left as it was

    url, key = _scoring(f, "zyg-ep")
    with Load(url, key, IRIS_BODY, threads=4) as load:
        zygote.kill()
        wait_until(lambda: not alive(zygote.pid))
        served = load.result.ok
        wait_until(lambda: load.result.ok > served + 50)
        assert _ready_pids(f, "zyg-ep") == replicas                      # the same processes serve on,
        assert {psutil.Process(p).ppid() for p in replicas} == {server.pid}   # now the server's children
        os.kill(replicas[0], signal.SIGKILL)                             # a replacement needs a new zygote
        wait_until(lambda: len(pids := _ready_pids(f, "zyg-ep")) == 2 and replicas[0] not in pids)
        served = load.result.ok
        wait_until(lambda: load.result.ok > served + 50)
    assert load.result.failed == [] and load.result.ok > 0
    assert _zygote(server).pid != zygote.pid

    # Re-parented replicas still die with the server.
    everyone = [c.pid for c in server.children(recursive=True)]
    server.kill()
    wait_until(lambda: not any(alive(p) for p in everyone), timeout=15)


# -- a run() that hangs -----------------------------------------------------------------------------

HANG_PY = '''
import json, os, threading
def init():
    pass
def run(raw_data):
    if json.loads(raw_data).get("hang"):
        threading.Event().wait()   # never returns
    return {"pid": os.getpid()}
'''


class PacedLoad:
    """`threads` clients, each sending `per_s` requests a second until `seconds` have passed; every
    `hang_every`-th request overall asks the model to hang. Counts answers by kind."""

    def __init__(self, url: str, key: str, threads: int, per_s: float, seconds: float, hang_every: int):
        self.url, self.key, self.threads, self.per_s, self.seconds = url, key, threads, per_s, seconds
        self.hang_every = hang_every
        self.sent = 0
        self.hung: list[int] = []        # statuses of the requests that hung
        self.ok = 0
        self.failed: list = []           # (status, text) of the others that did not succeed
        self.lock = threading.Lock()

    def _client(self) -> None:
        period = 1.0 / self.per_s
        end = time.monotonic() + self.seconds
        next_at = time.monotonic()
        with httpx.Client(timeout=30, headers={"authorization": f"Bearer {self.key}"}) as client:
            while (now := time.monotonic()) < end:
                if next_at > now:
                    time.sleep(next_at - now)   # the pace of the load, not a wait for a condition
                next_at = max(next_at + period, time.monotonic())
                with self.lock:
                    self.sent += 1
                    hang = self.sent % self.hang_every == 0
                r = client.post(self.url, json={"hang": True} if hang else {"data": IRIS_ROWS})
                with self.lock:
                    if hang:
                        self.hung.append(r.status_code)
                    elif r.status_code == 200:
                        self.ok += 1
                    else:
                        self.failed.append((r.status_code, r.text[:200]))

    def run(self) -> None:
        with ThreadPoolExecutor(self.threads) as pool:
            for fut in [pool.submit(self._client) for _ in range(self.threads)]:
                fut.result()


HANG_SECONDS = 60      # the minute: about twenty hangs, with both replicas stuck at once now and then
HANG_CLIENTS = 8
HANG_PACE = 4         # requests a second per client


@pytest.mark.slow
def test_a_run_that_hangs_for_one_request_in_a_hundred_leaves_the_other_ninety_nine_served(fleet, models_dir,
                                                                                          tmp_path):
    """Default settings (a 5 s request timeout), two replicas, 8 clients for a minute. Each hang holds
    a replica until its call passes the timeout; routing sends nothing new to a replica whose call
    is far older than usual, a spare starts when both are so while requests wait, and the stuck
    replica is replaced at once when its call passes the timeout (the requests queued behind it are
    retried elsewhere)."""
    f = fleet
    _deploy_iris(f, models_dir, "hang-ep", instance_count=2,
                 code_configuration=scoring_code(tmp_path / "code", HANG_PY))
    url, key = _scoring(f, "hang-ep")
    load = PacedLoad(url, key, threads=HANG_CLIENTS, per_s=HANG_PACE, seconds=HANG_SECONDS, hang_every=100)
    load.run()
    assert len(load.hung) >= 5 and set(load.hung) == {408}          # a hung request times out, once
    others = load.ok + len(load.failed)
    print(f"{load.ok} of {others} other requests succeeded ({100 * load.ok / others:.2f} %), {len(load.hung)} hung")
    assert load.ok >= 0.99 * others, (load.ok, others, load.failed)
    dep = f.online_deployments.get("blue", "hang-ep")
    assert dep["restarts"] >= len(load.hung) - 2 and "run() is stuck" in dep["last_failure"]
    wait_until(lambda: len(_ready_pids(f, "hang-ep")) >= 2, timeout=30)   # replaced (spares stop once calm)
    logs = f.online_deployments.get_logs("blue", "hang-ep", lines=2000)
    assert "run() is stuck; killing it and starting another" in logs


# -- a stopped replica ------------------------------------------------------------------------------

def _access_log(fleet) -> list[dict]:
    path = fleet.workspace.logs_dir / "access.log"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_a_stopped_replica_is_replaced_and_fails_no_request_it_had_not_taken(fleet, models_dir):
    """Default probes and request settings: the supervisor misses the stopped replica's heartbeats,
    routing skips it after the first miss, and it is killed after three; the requests it held but
    never answered are retried on its sibling."""
    f = fleet
    _deploy_iris(f, models_dir, "stop-ep", instance_count=2)
    before = _ready_pids(f, "stop-ep")
    stopped = before[0]
    stopped_id = next(r["id"] for r in f.online_deployments.get("blue", "stop-ep")["replicas"] if r["pid"] == stopped)
    url, key = _scoring(f, "stop-ep")
    with Load(url, key, IRIS_BODY, threads=4) as load:
        os.kill(stopped, signal.SIGSTOP)
        wait_until(lambda: not alive(stopped), timeout=30)
        wait_until(lambda: len(pids := _ready_pids(f, "stop-ep")) == 2 and stopped not in pids, timeout=30)
        served = load.result.ok
        wait_until(lambda: load.result.ok > served + 50)
    assert load.result.ok > 0
    entries = wait_until(lambda: len(e := _access_log(f)) >= load.result.answered and e)
    failed = [e for e in entries if e["status"] != 200]
    assert all(e["replica"] == stopped_id for e in failed), failed
    assert len(failed) == len(load.result.failed)
    logs = f.online_deployments.get_logs("blue", "stop-ep", lines=500)
    assert "missed 3 liveness probes" in logs


# -- a full disk ------------------------------------------------------------------------------------

_FULL_DISK_DRIVER = '''
import json, os, sys
from pathlib import Path
os.environ["FLEET_HOME"] = sys.argv[1]
from modelfleet import Fleet
f = Fleet()
f.models.register("iris", sys.argv[2], "1")
f.online_endpoints.create("disk-ep")
f.online_deployments.create("blue", "disk-ep", "iris:1", instance_count=2,
                            code_configuration={"code": sys.argv[3], "scoring_script": "score.py"})
from modelfleet.client.launcher import read_info
server = read_info(f.workspace)
print(json.dumps({"url": f.online_endpoints.get("disk-ep")["scoring_uri"],
                  "key": f.online_endpoints.get_keys("disk-ep")["primaryKey"],
                  "server": server.pid, "api": server.url, "token": server.token}), flush=True)
sys.stdin.readline()                  # the test says when
f.server.stop()
'''

NOISY_PY = '''
import json
def init():
    pass
def run(raw_data):
    data = json.loads(raw_data)
    if data.get("raise"):
        raise ValueError("bad input on purpose " + "x" * 500)
    print("scored", len(data["data"]), "rows")
    return [0] * len(data["data"])
'''


def _fill(path: Path) -> None:
    """Write `path` until the filesystem refuses."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    except OSError:
        return   # full already
    try:
        for size in (1 << 20, 4096):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)


@pytest.mark.slow
def test_a_full_disk_leaves_good_traffic_served_and_is_warned_about_first(tmp_path, models_dir):
    """The workspace lives on a real 64 MiB filesystem (helpers.on_a_small_disk)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    code = tmp_path / "code"
    scoring_code(code, NOISY_PY)
    with on_a_small_disk(mnt, _FULL_DISK_DRIVER, str(models_dir / "iris"), str(code)) as (info, disk):
        bad = {"data": IRIS_ROWS, "raise": True}
        with httpx.Client(headers={"authorization": f"Bearer {info['key']}"}, timeout=30) as client, \
                httpx.Client(base_url=info["api"], headers={"authorization": f"Bearer {info['token']}"},
                             timeout=30) as admin, \
                Load(info["url"], info["key"], IRIS_BODY, threads=2) as load:
            # Nearly full: the server warns.
            usage = shutil.disk_usage(disk)
            with open(disk / "filler-1", "wb") as filler:
                filler.write(b"\0" * (usage.free - (3 << 20)))
            wait_until(lambda: any("disk is nearly full" in e["message"] for e in admin.get("/api/events",
                                                                                          params={"n": 1000}).json()),
                       timeout=30)
            # Full: bad requests still get their 424 (their tracebacks are lost), good ones 200,
            # and a replica killed now is replaced (its log cannot be written).
            _fill(disk / "filler-2")
            assert shutil.disk_usage(disk).free < 64 * 1024
            server = psutil.Process(info["server"])

            def replicas() -> set[int]:
                return {c.pid for c in server.children() if c.name() == "mf:blue" and c.status() != psutil.STATUS_ZOMBIE}
            serving = replicas()
            assert {client.post(info["url"], json=bad).status_code for _ in range(50)} == {424}
            assert replicas() == serving           # a traceback that cannot be written kills nobody
            victim = min(serving)
            os.kill(victim, signal.SIGKILL)
            wait_until(lambda: len(now := replicas()) == 2 and victim not in now, timeout=30)
            served = load.result.ok
            wait_until(lambda: load.result.ok > served + 100)
            assert {client.post(info["url"], json=bad).status_code for _ in range(20)} == {424}
        assert load.result.failed == [] and load.result.ok > 0
        for name in ("filler-1", "filler-2"):
            (disk / name).unlink()


# -- a flood of idle and slow connections ---------------------------------------------------------

@pytest.mark.slow
def test_a_flood_of_idle_and_slowloris_connections_leaves_normal_requests_served(fleet, models_dir):
    f = fleet
    f.server.start(idle_timeout_s=10, header_timeout_s=5, max_connections=1000)
    _deploy_iris(f, models_dir, "flood-ep")
    url, key = _scoring(f, "flood-ep")
    where = urlsplit(url)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096 <= hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (4096, hard))
    flood: list[socket.socket] = []
    try:
        for i in range(2000):
            s = socket.create_connection((where.hostname, where.port))
            if i % 2:  # slowloris: a request line and one header, the rest never comes
                s.sendall(b"POST /endpoints/flood-ep/score HTTP/1.1\r\nHost: x\r\n")
            flood.append(s)

        def still_open() -> int:
            for s in flood:
                if s.fileno() >= 0:
                    try:
                        if not s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT):
                            s.close()    # the server closed it
                    except BlockingIOError:
                        pass             # open, nothing to read
                    except OSError:
                        s.close()        # reset by the server
            return sum(1 for s in flood if s.fileno() >= 0)

        headers = {"authorization": f"Bearer {key}"}
        with httpx.Client(headers=headers, timeout=30) as keep_alive:
            answers = [keep_alive.post(url, content=IRIS_BODY).status_code for _ in range(50)]
        answers += [httpx.post(url, content=IRIS_BODY, headers=headers, timeout=30).status_code for _ in range(50)]
        assert answers == [200] * 100
        assert still_open() > 500                 # the flood was on while they were served
        wait_until(lambda: still_open() == 0, timeout=40)   # idle and slow ones are closed by the server
        assert httpx.post(url, content=IRIS_BODY, headers=headers, timeout=30).status_code == 200
    finally:
        for s in flood:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# -- no file descriptors left -------------------------------------------------------------------------

_ATTEMPT = re.compile(r"^(\S+ \S+) WARNING modelfleet.controller: could not start replicas of fd-ep/blue: "
                      r"OSError: \[Errno 24\] Too many open files$")


@pytest.mark.slow
def test_out_of_file_descriptors_a_restart_backs_off_with_one_line_per_attempt(fleet, models_dir):
    f = fleet
    _deploy_iris(f, models_dir, "fd-ep", instance_count=2)
    server = f.server.status()["pid"]
    log = f.workspace.logs_dir / "server.log"
    victim = _ready_pids(f, "fd-ep")[0]
    soft, hard = resource.prlimit(server, resource.RLIMIT_NOFILE)
    # No room for the socketpair a replacement needs (the victim's socket closes when it dies).
    resource.prlimit(server, resource.RLIMIT_NOFILE, (len(os.listdir(f"/proc/{server}/fd")), hard))
    try:
        os.kill(victim, signal.SIGKILL)
        attempts = wait_until(lambda: len(a := [m.group(1) for m in map(_ATTEMPT.match, log.read_text().splitlines())
                                                if m]) >= 4 and a, timeout=30)
    finally:
        resource.prlimit(server, resource.RLIMIT_NOFILE, (soft, hard))
    times = [time.mktime(time.strptime(t.split(",")[0], "%Y-%m-%d %H:%M:%S")) + int(t.split(",")[1]) / 1000
             for t in attempts[:4]]
    gaps = [b - a for a, b in zip(times, times[1:])]
    # backing off, not a tight loop: never sooner than the first wait, and longer waits later (an
    # attempt may come as late as the next once-a-second pass, so the gaps need not be sorted)
    assert min(gaps) >= 0.09 and gaps[-1] > gaps[0]
    assert "Traceback" not in log.read_text()
    wait_until(lambda: len(_ready_pids(f, "fd-ep")) == 2, timeout=60)   # back once files are available
    assert f.online_deployments.get("blue", "fd-ep")["health"] == "Healthy"


# -- writers racing on one deployment -----------------------------------------------------------------

@pytest.mark.slow
def test_a_stale_update_is_refused_and_nothing_changes(fleet, models_dir):
    f = fleet
    _deploy_iris(f, models_dir, "etag-ep")
    read = f.online_deployments.get("blue", "etag-ep")
    f.online_deployments.update("blue", "etag-ep", request_settings={"request_timeout_ms": 3000})
    now = f.online_deployments.get("blue", "etag-ep")
    assert now["etag"] != read["etag"]
    body = {k: read[k] for k in ("model", "instance_count", "request_settings")}
    with pytest.raises(PreconditionFailed, match=r"changed since it was read .*read it again and retry"):
        f.request("PUT", "/api/endpoints/etag-ep/deployments/blue", json=body, params={"create": "false"},
                  headers={"if-match": f'"{read["etag"]}"'})
    after = f.online_deployments.get("blue", "etag-ep")
    assert after["etag"] == now["etag"] and after["request_settings"]["request_timeout_ms"] == 3000


@pytest.mark.slow
def test_twenty_parallel_cli_updates_each_win_or_fail_none_is_lost(fleet, models_dir):
    f = fleet
    _deploy_iris(f, models_dir, "race-ep")

    def update(i: int) -> subprocess.CompletedProcess:
        return subprocess.run([FLEET, "online-deployment", "update", "--name", "blue", "--endpoint", "race-ep",
                               "--env", f"WRITER_{i}=yes", "--no-wait"], capture_output=True, text=True, timeout=120)
    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(update, range(20)))
    won = {i for i, r in enumerate(results) if r.returncode == 0}
    for i, r in enumerate(results):
        if i not in won:
            assert r.returncode == 1 and "changed since it was read" in r.stderr.strip(), r.stderr
            assert len(r.stderr.strip().splitlines()) == 1
    assert won
    env = f.online_deployments.wait("race-ep", "blue")["environment_variables"]
    assert set(env) == {f"WRITER_{i}" for i in won}   # every winner's change is there, no loser's
