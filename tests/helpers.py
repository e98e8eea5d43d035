"""Helpers for tests that talk to a real server."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import httpx
import psutil
import pytest
from click.testing import CliRunner

from modelfleet.cli.main import cli
from modelfleet.cli.quickstart import train
from modelfleet.ports import free_ports


# A test that starts a Ray cluster runs in this group: of `make test`'s two workers (pytest-xdist,
# --dist loadgroup) one runs all of them, one after another. A cluster is a dozen processes that
# start more on demand; two at once on two cores would compete with each other and the other tests.
RAY_GROUP = pytest.mark.xdist_group("ray")

# The first lines of an Azure script run here: `az ml` mapped to `fleet`, the only change.
SCRIPT_HEAD = """set -euo pipefail
az() {  # `az ml ...` -> `fleet ...`: the only change to the script
    [ "$1" = ml ] || { echo "not an az ml command: $*" >&2; return 2; }
    shift
    fleet "$@"
}
"""


@dataclass
class LoadResult:
    ok: int = 0
    failed: list = field(default_factory=list)

    @property
    def answered(self) -> int:
        return self.ok + len(self.failed)


class Load:
    """Continuous requests from background threads until stopped; counts every failure."""

    def __init__(self, url: str, key: str | None, body: bytes, threads: int = 4, headers: dict | None = None):
        self.url, self.body = url, body
        self.headers = {"content-type": "application/json", **(headers or {})}
        if key:
            self.headers["authorization"] = f"Bearer {key}"
        self.result = LoadResult()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                try:
                    r = client.post(self.url, content=self.body, headers=self.headers)
                    ok = r.status_code == 200
                    detail = (r.status_code, r.text[:200])
                except httpx.HTTPError as e:
                    ok, detail = False, repr(e)
                with self._lock:
                    if ok:
                        self.result.ok += 1
                    else:
                        self.result.failed.append(detail)

    def __enter__(self):
        """Start the threads; return once the first requests have been answered (the load is on)."""
        for t in self._threads:
            t.start()
        try:
            wait_until(lambda: self.result.answered >= len(self._threads))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)


def alive(pid: int) -> bool:
    """The process runs (a zombie does not); one that exits while asked is not."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, for a server a test starts: below the range the OS hands
    out, so that a server stopped and started again on it finds it free while other tests run."""
    return free_ports(1)[0]


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def run_cli(*args: str, code: int = 0):
    """`fleet ARGS` in this process; asserts the exit code."""
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def write(path: Path, text: str) -> Path:
    """`text` (dedented) as the file at `path`, its folders made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def scoring_code(folder, source: str) -> dict:
    """Write `source` as folder/score.py; the code_configuration that deploys it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "score.py").write_text(source)
    return {"code": str(folder), "scoring_script": "score.py"}


def iris_score_py(who: str) -> str:
    """A score.py that loads the iris model of $AZUREML_MODEL_DIR and says who scored."""
    return textwrap.dedent(f"""
        import json, os, joblib
        def init():
            global model
            model = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "iris", "model.joblib"))
        def run(raw):
            return {{"scored_by": {who!r}, "predictions": model.predict(json.loads(raw)["data"]).tolist()}}
        """)


EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "multi-model"


def run_seed_scripts(fleet_home, tmp_path, extra_env: dict | None = None, wrap: Sequence[str] = ()) -> None:
    """examples/multi-model's register.sh, deploy.sh and update.sh as they are, with the `fleet` on
    PATH and `extra_env` (e.g. COMPUTE_TYPE) in their environment; every command run under `wrap`
    (e.g. `ip netns exec NS`: a client in another network namespace)."""
    work = tmp_path / "multi-model"
    shutil.copytree(EXAMPLES, work, ignore=shutil.ignore_patterns("models"))
    train("iris", work / "models" / "model_a")
    train("wine", work / "models" / "model_b")
    train("breast_cancer", work / "models" / "model_c")
    train("wine", work / "models" / "model_b_v2", variant=2)
    env = {**os.environ, "FLEET_HOME": str(fleet_home), **(extra_env or {}),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    assert shutil.which("fleet", path=env["PATH"])

    def run(*args):
        return subprocess.run([*wrap, *args], env=env, capture_output=True, text=True, timeout=300)

    def sh(script):
        p = run("bash", str(work / script))
        assert p.returncode == 0, (script, p.stdout, p.stderr)
        return p

    sh("register.sh")
    listed = run("fleet", "model", "list", "-o", "json")
    got = {(m["name"], m["version"], m["description"]) for m in json.loads(listed.stdout)}
    assert got == {("model_a", "v1", "Model A for user segment 1"), ("model_b", "v1", "Model B for user segment 2"),
                   ("model_c", "v2", "Model C for user segment 3")}
    sh("deploy.sh")
    eps = json.loads(run("fleet", "online-endpoint", "list", "-o", "json").stdout)
    assert {e["name"]: e["traffic"] for e in eps} == {
        "aci-model-a": {"default": 100}, "aci-model-b": {"default": 100}, "aci-model-c": {"default": 100}}
    pids_a = _pids(run, "aci-model-a")
    sh("update.sh")
    dep = json.loads(run("fleet", "online-deployment", "show", "--name", "default", "--endpoint",
                         "aci-model-b", "-o", "json").stdout)
    assert dep["model"] == "model_b:v2" and dep["provisioning_state"] == "Succeeded"
    assert _pids(run, "aci-model-a") == pids_a  # the neighbours were not restarted
    (tmp_path / "req.json").write_text(json.dumps({"data": [[13.2, 1.78, 2.14, 11.2, 100, 2.65, 2.76, 0.26, 1.28,
                                                             4.38, 1.05, 3.4, 1050]]}))
    r = run("fleet", "online-endpoint", "invoke", "--name", "aci-model-b", "--request-file", str(tmp_path / "req.json"))
    assert r.returncode == 0 and json.loads(r.stdout) in ([0], [1], [2])


def _pids(run, endpoint):
    dep = json.loads(run("fleet", "online-deployment", "show", "--name", "default", "--endpoint", endpoint,
                         "-o", "json").stdout)
    return sorted(r["pid"] for r in dep["replicas"])


def compute_row(fleet, name: str) -> dict:
    """A compute's row as the workspace's store keeps it (address, token, directory): what a test
    needs to reach its cluster, and what the client is never shown."""
    from modelfleet.store import Database
    from modelfleet.store.computes import ComputeStore
    db = Database(fleet.workspace.db_url)
    try:
        return ComputeStore(db).get(name)
    finally:
        db.close()


@contextlib.contextmanager
def on_a_small_disk(mnt: Path, driver: str, *args: str):
    """Run the Python source `driver` with a workspace home on a real 64 MiB filesystem: a tmpfs
    at `mnt` in a private mount namespace that ends with the driver, whose view the test reaches
    through /proc/<pid>/root. The driver gets `MNT/home` and `args`, prints one JSON line when it
    is ready, and is told to stop by a line on its stdin. Yields (that JSON, the disk's folder)."""
    if not shutil.which("unshare"):
        pytest.skip("unshare(1) is not installed: cannot mount a private small filesystem")
    script = ('mount -t tmpfs -o size=64m tmpfs "$1" && m="$1" py="$2" src="$3" && shift 3 && '
              'exec "$py" -c "$src" "$m/home" "$@"')
    proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
                             str(mnt), sys.executable, driver, *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        if not first:
            err = proc.stderr.read()
            if "unshare:" in err or "mount:" in err:
                pytest.skip(f"cannot mount a private tmpfs here: {err.strip()}")
            raise AssertionError(err)
        yield json.loads(first), Path(f"/proc/{proc.pid}/root") / str(mnt).lstrip("/")
    finally:
        if proc.poll() is None:
            proc.stdin.write("stop\n")
            proc.stdin.flush()
            proc.wait(timeout=60)


@contextlib.contextmanager
def second_ray_node(fleet, compute: dict, env: dict | None = None):
    """A second Ray node on this machine joined to `compute`'s head (tests/ray_node.py), with
    `env` added to its environment; yields its temp dir; every process of it stopped by pid."""
    from modelfleet.backends.ray import cluster as ray_cluster
    temp_dir = f"/tmp/mf-n2-{os.urandom(4).hex()}"
    node_env = {**os.environ, **ray_cluster.ray_environment(compute["auth_token"], compute["address"]), **(env or {})}
    proc = subprocess.Popen([sys.executable, str(Path(__file__).parent / "ray_node.py"), compute["address"],
                             temp_dir, "1"], env=node_env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        wait_until(lambda: len([n for n in fleet.computes.show(compute["name"])["nodes"] if n["alive"]]) == 2,
                   timeout=60)
        yield temp_dir
    finally:
        kill_ray_node(temp_dir)
        proc.kill()
        proc.wait()
        shutil.rmtree(temp_dir, ignore_errors=True)


def kill_ray_node(temp_dir: str) -> None:
    """SIGKILL every process of one Ray node, its workers included."""
    from modelfleet.backends.ray import cluster as ray_cluster
    for p in ray_cluster.cluster_processes(temp_dir):
        with contextlib.suppress(psutil.Error):
            p.kill()
