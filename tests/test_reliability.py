"""Faults with real processes: a tampered artifact, a taken port, a read-only workspace, a full
disk, a replica that leaks memory, the server killed under load.

Proven elsewhere (docs/reliability.md lists every guarantee and its test): kill -9 of one replica
under load and a run() that crashes its process (test_serving.py); kill mid-copy during register,
a corrupted artifact seen by the registry, and 8 processes x 25 registrations (test_registry.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from modelfleet.domain.errors import DeploymentFailed, FleetError, StorageError

from .conftest import IRIS_ROWS
from .helpers import Load, alive, free_port, wait_until

FLEET = str(Path(sys.executable).with_name("fleet"))


def _fleet_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """The installed `fleet` command in its own process (FLEET_HOME comes from the environment)."""
    return subprocess.run([FLEET, *args], capture_output=True, text=True, timeout=timeout)


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def _scoring(fleet, endpoint: str) -> tuple[str, str]:
    return fleet.online_endpoints.get(endpoint)["scoring_uri"], fleet.online_endpoints.get_keys(endpoint)["primaryKey"]


IRIS_BODY = json.dumps({"data": IRIS_ROWS}).encode()


# -- a corrupted artifact ------------------------------------------------------------------------

@pytest.mark.slow
def test_tampered_model_is_refused_at_deployment_and_the_endpoint_keeps_serving(fleet, models_dir):
    f = fleet
    f.models.register("iris", models_dir / "iris", "1")
    v2 = f.models.register("iris", models_dir / "iris_v2", "2")
    f.online_endpoints.create("tamper-ep")
    f.online_deployments.create("blue", "tamper-ep", "iris:1")
    # Change one byte of the stored version 2 after registration (snapshots are 0444; a bad disk
    # or a careless hand does not care).
    stored = max((p for p in (f.workspace.artifacts / "models" / v2.sha256).rglob("*") if p.is_file()),
                 key=lambda p: p.stat().st_size)
    os.chmod(stored, 0o644)
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))

    url, key = _scoring(f, "tamper-ep")
    with Load(url, key, IRIS_BODY, threads=2) as load:
        with pytest.raises(DeploymentFailed, match="sha256 mismatch") as info:
            f.online_deployments.create("green", "tamper-ep", "iris:2")
    assert stored.name in info.value.message
    assert load.result.failed == [] and load.result.ok > 0
    green = f.online_deployments.get("green", "tamper-ep")
    assert green["provisioning_state"] == "Failed" and green["replicas"] == []
    assert f.online_endpoints.get("tamper-ep")["traffic"] == {"blue": 100}
    assert f.online_endpoints.invoke("tamper-ep", {"data": IRIS_ROWS}) == [0, 2]


@pytest.mark.slow
def test_tampered_code_snapshot_is_refused_at_restart(fleet, models_dir, tmp_path):
    f = fleet
    code = tmp_path / "scoring"
    code.mkdir()
    (code / "score.py").write_text("def init():\n    pass\ndef run(raw):\n    return 'genuine'\n")
    f.models.register("iris", models_dir / "iris", "1")
    f.online_endpoints.create("code-ep")
    dep = f.online_deployments.create("blue", "code-ep", "iris:1",
                                      code_configuration={"code": str(code), "scoring_script": "score.py"})
    assert f.online_endpoints.invoke("code-ep", {}) == "genuine"
    f.server.stop()
    stored = f.workspace.artifacts / "code" / dep["code"]["sha256"] / "scoring" / "score.py"
    os.chmod(stored, 0o644)
    stored.write_text("def init():\n    pass\ndef run(raw):\n    return 'swapped'\n")
    f.server.start()
    failed = wait_until(lambda: (lambda d: d if d["provisioning_state"] == "Failed" else None)(
        f.online_deployments.get("blue", "code-ep")), timeout=30)
    assert "does not match its sha256" in failed["error"] and failed["replicas"] == []


# -- a port already in use -----------------------------------------------------------------------

@pytest.mark.slow
def test_port_in_use_is_a_one_line_error_and_starts_nothing(fleet_home):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        port = held.getsockname()[1]
        r = _fleet_cli("server", "start", "--port", str(port))
    assert r.returncode == 1
    line = _one_line(r.stderr)
    assert line.startswith("error:") and f"127.0.0.1:{port}" in line and "Address already in use" in line
    assert json.loads(_fleet_cli("server", "status", "-o", "json").stdout)["status"] == "stopped"
    assert not list(fleet_home.glob("**/run/server.json"))


# -- a read-only workspace -----------------------------------------------------------------------

@contextlib.contextmanager
def _read_only(path: Path):
    """Make `path` and everything under it refuse writes, for real.

    Mode bits do not stop root (CI runs as root), so there the immutable attribute is used,
    which stops every process. Restored on exit.
    """
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [path, *path.rglob("*")]}
        for p in modes:
            os.chmod(p, 0o555 if p.is_dir() else 0o444)
        try:
            yield
        finally:
            for p, mode in modes.items():
                os.chmod(p, mode)
        return
    if not shutil.which("chattr"):
        pytest.skip("running as root, where mode bits do not stop writes, and chattr is not installed")
    r = subprocess.run(["chattr", "-R", "+i", str(path)], capture_output=True, text=True)
    if r.returncode != 0:
        subprocess.run(["chattr", "-R", "-i", str(path)], capture_output=True)
        pytest.skip(f"running as root, where mode bits do not stop writes, and chattr +i failed: {r.stderr.strip()}")
    # The running server's open SQLite files stay writable, as they do when mode bits change under
    # a running process: SQLite maps its -shm file, and a write to an immutable mapped page is a
    # SIGBUS (every request now reads the store first, to authorize its caller).
    open_files = [str(p) for p in path.glob("workspace.db*")]
    if open_files:
        subprocess.run(["chattr", "-i", *open_files], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-R", "-i", str(path)], check=True)


def _small_model(tmp_path: Path, name: str, content: bytes) -> Path:
    d = tmp_path / name
    d.mkdir()
    (d / "model.pkl").write_bytes(content)
    return d


@pytest.mark.slow
def test_read_only_workspace_refuses_register_with_a_clear_error(fleet, tmp_path):
    fleet.models.register("kept", _small_model(tmp_path, "kept", b"kept"))
    ws = fleet.workspace.path
    new = str(_small_model(tmp_path, "new", b"new"))
    with _read_only(ws):   # the server runs: it refuses the upload
        r = _fleet_cli("model", "register", "--name", "new", "--path", new)
        assert r.returncode == 1
        line = _one_line(r.stderr)
        assert "cannot store" in line and str(ws) in line
        fleet.server.stop()   # stopped: nothing can start in a read-only workspace, and it says so
        r = _fleet_cli("model", "register", "--name", "new", "--path", new)
        assert r.returncode == 1
        line = _one_line(r.stderr)
        assert "cannot start the server" in line and str(ws) in line
    assert [(m.name, m.version) for m in fleet.models.list()] == [("kept", "1")]


def test_read_only_artifact_store_refuses_register_and_leaves_no_version(api_fleet, inprocess, tmp_path):
    fleet = api_fleet
    fleet.models.register("kept", _small_model(tmp_path, "kept", b"kept"))
    artifacts = inprocess.ws.artifacts
    new = _small_model(tmp_path, "new", b"new")
    with _read_only(artifacts):
        with pytest.raises(StorageError, match=f"cannot store .* in {artifacts}"):
            fleet.models.register("new", new)
        assert [m.name for m in fleet.models.list()] == ["kept"]  # the database still answers
    assert fleet.models.register("new", new).version == "1"
    assert list((artifacts / "tmp").iterdir()) == []


# -- a full disk ---------------------------------------------------------------------------------

_LIMITED_FLEET = '''
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
from modelfleet.cli.main import cli
cli(sys.argv[2:], prog_name="fleet")
'''


def _big_model(tmp_path: Path, mib: int) -> Path:
    """A directory whose first file fits in a small disk and whose second does not."""
    d = tmp_path / "big"
    d.mkdir()
    (d / "a.bin").write_bytes(os.urandom(1 << 20))
    (d / "b.bin").write_bytes(os.urandom(mib << 20))
    return d


@pytest.mark.slow
def test_write_failing_mid_register_leaves_no_version_and_no_staging(fleet, tmp_path):
    """Every file write of the server past 2 MiB fails (RLIMIT_FSIZE, inherited from the command that
    started it): the upload fails half way, as on a full disk."""
    fleet.models.register("small", _small_model(tmp_path, "small", b"small"))
    fleet.server.stop()
    big = _big_model(tmp_path, 6)
    started = subprocess.run([sys.executable, "-c", _LIMITED_FLEET, str(2 << 20), "server", "start"],
                             capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, started.stderr
    r = _fleet_cli("model", "register", "--name", "big", "--path", str(big))
    assert r.returncode == 1
    line = _one_line(r.stderr)
    assert "cannot store" in line and "File too large" in line
    artifacts = fleet.workspace.artifacts
    assert [m.name for m in fleet.models.list()] == ["small"]
    assert list((artifacts / "tmp").iterdir()) == []        # the half-written upload is gone
    assert len(list((artifacts / "models").iterdir())) == 1  # only the small model's snapshot
    fleet.server.stop()   # the next start has no limit
    m = fleet.models.register("big", big)
    assert m.version == "1" and len(m.files) == 2
    fleet.models.verified_path(m)  # every byte verified


_FULL_DISK = '''
import json, os, sys
os.environ["FLEET_HOME"] = sys.argv[1]
from modelfleet import Fleet
from modelfleet.domain.errors import StorageError
f = Fleet()
f.models.register("small", sys.argv[2])
out = {}
try:
    f.models.register("big", sys.argv[3])
    out["error"] = None
except StorageError as e:
    out["error"] = e.message
out["models"] = sorted(m.name for m in f.models.list())
out["staging"] = os.listdir(f.workspace.artifacts / "tmp")
out["next"] = f.models.register("after", sys.argv[4]).version
f.server.stop()   # it lives in this mount namespace only
print(json.dumps(out))
'''


@pytest.mark.slow
def test_full_filesystem_during_register_leaves_no_version_and_no_staging(tmp_path):
    """A real 4 MiB filesystem (tmpfs, mounted in a private mount namespace that ends with the
    process) holds the workspace; registering 7 MiB fills it."""
    if not shutil.which("unshare"):
        pytest.skip("unshare(1) is not installed: cannot mount a private small filesystem")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    small = _small_model(tmp_path, "small", b"small")
    after = _small_model(tmp_path, "after", b"after")
    big = _big_model(tmp_path, 6)
    script = 'mount -t tmpfs -o size=4m tmpfs "$1" && exec "$2" -c "$3" "$1/home" "$4" "$5" "$6"'
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
                        str(mnt), sys.executable, _FULL_DISK, str(small), str(big), str(after)],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0 and not r.stdout.strip() and ("unshare:" in r.stderr or "mount:" in r.stderr):
        pytest.skip(f"cannot mount a private tmpfs here: {r.stderr.strip()}")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["error"] and "No space left on device" in out["error"]
    assert out["models"] == ["small"] and out["staging"] == []
    assert out["next"] == "1"


# -- a replica that leaks memory -----------------------------------------------------------------

LEAK_PY = '''
import json, os
hoard = []
def _peak_mib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) >> 10
def init():
    pass
def run(raw_data):
    mb = json.loads(raw_data).get("leak_mb", 0)
    if mb and sum(map(len, hoard)) < 800 * 2**20:  # bounded even if nothing stopped it
        hoard.append(b"\\x01" * (mb * 2**20))      # written, so resident
    return {"pid": os.getpid(), "held_mb": sum(map(len, hoard)) >> 20, "peak_mib": _peak_mib()}
'''


@pytest.mark.slow
def test_a_leak_under_a_memory_limit_stays_under_it_restarts_and_says_why(fleet, models_dir, tmp_path):
    f = fleet
    code = tmp_path / "leak"
    code.mkdir()
    (code / "score.py").write_text(LEAK_PY)
    f.models.register("iris", models_dir / "iris", "1")
    f.online_endpoints.create("leak-ep")
    f.online_deployments.create("blue", "leak-ep", "iris:1", resources={"limits": {"memory": "300Mi"}},
                                code_configuration={"code": str(code), "scoring_script": "score.py"})
    f.online_endpoints.create("calm-ep")
    f.online_deployments.create("blue", "calm-ep", "iris:1")
    calm = [r["pid"] for r in f.online_deployments.get("blue", "calm-ep")["replicas"]]
    pids, peaks, refusals = [], [], []

    def leak_through_two_replicas():
        try:
            answer = f.online_endpoints.invoke("leak-ep", {"leak_mb": 40})
        except FleetError as e:   # the request that found the limit
            refusals.append(e.message)
            return False
        if answer["pid"] not in pids:
            pids.append(answer["pid"])
        peaks.append(answer["peak_mib"])
        return len(pids) >= 3
    wait_until(leak_through_two_replicas, timeout=120, interval=0.1)

    assert max(peaks) <= 300 * 1.05                      # the kernel refused what would pass the limit
    assert len(refusals) >= 2 and all("reached its memory limit (300 MiB)" in m for m in refusals)
    dep = f.online_deployments.get("blue", "leak-ep")
    assert dep["restarts"] >= 2 and "reached its memory limit (300Mi)" in dep["last_failure"]
    logs = f.online_deployments.get_logs("blue", "leak-ep", lines=500)
    assert "reached its memory limit" in logs and "restarting" in logs
    assert not alive(pids[0])
    assert [r["pid"] for r in f.online_deployments.get("blue", "calm-ep")["replicas"]] == calm
    assert f.online_endpoints.invoke("calm-ep", {"data": IRIS_ROWS}) == [0, 2]


# -- the server killed under load ----------------------------------------------------------------

@pytest.mark.slow
def test_server_kill_9_under_load_then_start_restores_every_endpoint(fleet, models_dir):
    """Beyond test_serving.py::test_server_kill_9_leaves_no_orphans_and_restores: several endpoints,
    a traffic split, an open endpoint, clients running through the crash, a fixed port."""
    f = fleet
    port = free_port()
    f.server.start(port=port)
    f.models.register("iris", models_dir / "iris", "1")
    f.models.register("iris", models_dir / "iris_v2", "2")
    f.models.register("wine", models_dir / "wine", "1")
    f.online_endpoints.create("split-ep")
    f.online_deployments.create("blue", "split-ep", "iris:1")
    f.online_deployments.create("green", "split-ep", "iris:2")
    f.online_endpoints.update("split-ep", traffic={"blue": 70, "green": 30})
    f.online_endpoints.create("wine-ep")
    f.online_deployments.create("blue", "wine-ep", "wine:1", instance_count=2)
    f.online_endpoints.create("open-ep", auth_mode="none")
    f.online_deployments.create("blue", "open-ep", "iris:2")

    def state():
        eps = {e["name"]: e for e in f.online_endpoints.list()}
        return {name: (ep["auth_mode"], ep["traffic"], ep["scoring_uri"], f.online_endpoints.get_keys(name),
                       {d["name"]: d["model"] for d in f.online_deployments.list(name)})
                for name, ep in eps.items()}
    before = state()
    server = psutil.Process(f.server.status()["pid"])
    children = [c.pid for c in server.children(recursive=True)]
    assert children

    url, key = _scoring(f, "split-ep")
    with Load(url, key, IRIS_BODY, threads=2) as through_crash:
        os.kill(server.pid, signal.SIGKILL)
        wait_until(lambda: not any(alive(p) for p in children), timeout=15)  # no orphan
        served_before_restart = through_crash.result.ok
        r = _fleet_cli("server", "start", "--port", str(port), "-o", "json")
        assert r.returncode == 0, r.stderr
        wait_until(lambda: all(d["replicas"] and d["provisioning_state"] == "Succeeded"
                               for d in f.online_deployments.list()), timeout=60)
        wait_until(lambda: through_crash.result.ok > served_before_restart, timeout=30)  # served again

    assert state() == before
    wine_url, wine_key = _scoring(f, "wine-ep")
    open_url = f.online_endpoints.get("open-ep")["scoring_uri"]
    wine_row = json.dumps({"data": [[13.2, 1.78, 2.14, 11.2, 100, 2.65, 2.76, 0.26, 1.28, 4.38, 1.05, 3.4, 1050]]})
    with Load(url, key, IRIS_BODY, threads=2) as split, \
            Load(wine_url, wine_key, wine_row.encode(), threads=1) as wine, \
            Load(open_url, None, IRIS_BODY, threads=1) as open_:
        wait_until(lambda: min(split.result.ok, wine.result.ok, open_.result.ok) > 0, timeout=30)
    for load in (split, wine, open_):
        assert load.result.failed == []
