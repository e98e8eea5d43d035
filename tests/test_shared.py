"""Shared multi-model workers with real processes: eviction by measured bytes, an update beside
serving neighbours, a worker killed under load, a leaking worker recycled, what `show` says."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import textwrap

import httpx
import joblib
import numpy as np
import psutil
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from modelfleet.domain.errors import InvalidInput

from .conftest import IRIS_ROWS
from .helpers import Load, alive, wait_until

pytestmark = pytest.mark.slow  # every test here starts a server and shared workers

MiB = 2**20
IRIS_BODY = json.dumps({"data": IRIS_ROWS}).encode()


def _padded_model(folder, mib: int, seed: int = 0):
    """An iris classifier carrying `mib` MiB of numbers: a model whose size in memory is known."""
    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(X, y)
    model.padding_ = np.random.default_rng(seed).random(mib * MiB // 8)
    folder.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, folder / "model.joblib")
    return folder


def _replica(fleet, endpoint: str) -> dict:
    [r] = fleet.online_deployments.get("blue", endpoint)["replicas"]
    return r


def _scoring(fleet, endpoint: str) -> tuple[str, str]:
    return fleet.online_endpoints.get(endpoint)["scoring_uri"], fleet.online_endpoints.get_keys(endpoint)["primaryKey"]


def _deploy(fleet, endpoint: str, model: str, **kw) -> dict:
    fleet.online_endpoints.create(endpoint)
    return fleet.online_deployments.create("blue", endpoint, model, **kw)


def _importable(tmp_path, monkeypatch, name: str, source: str):
    """A module the test pickles a model class from, and that the server's processes import."""
    code = tmp_path / f"{name}_code"
    code.mkdir()
    (code / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(code))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(code), os.environ.get("PYTHONPATH", "")]))
    return __import__(name)


def test_least_recently_used_models_are_evicted_by_measured_bytes_and_reload_on_demand(fleet, tmp_path):
    f = fleet
    f.server.configure(shared_workers=1, shared_worker_memory="64Mi")   # room for two of three models
    for name in "abc":
        f.models.register(f"big-{name}", _padded_model(tmp_path / name, 24), "1")
    for name in "ab":
        _deploy(f, f"ep-{name}", f"big-{name}:1")
    a, b = _replica(f, "ep-a"), _replica(f, "ep-b")
    assert a["placement"] == b["placement"] == "shared" and a["pid"] == b["pid"] and a["loaded"] and b["loaded"]
    assert a["memory_bytes"] >= 24 * MiB and a["last_load_ms"] > 0
    f.online_endpoints.invoke("ep-a", {"data": IRIS_ROWS})            # a used last: b is the oldest

    dep = _deploy(f, "ep-c", "big-c:1")                                # no room: b goes
    assert dep["placement"] == "shared" and dep["loaded"] and dep["last_load_ms"] > 0
    assert not _replica(f, "ep-b")["loaded"] and _replica(f, "ep-a")["loaded"]
    shown = f.online_endpoints.get("ep-b")
    assert shown["placement"] == {"blue": "shared"} and shown["loaded"] == {"blue": False}

    assert f.online_endpoints.invoke("ep-b", {"data": IRIS_ROWS}) == [0, 2]   # back, transparently
    wait_until(lambda: _replica(f, "ep-b")["loaded"] and not _replica(f, "ep-a")["loaded"])
    assert _replica(f, "ep-b")["pid"] == a["pid"]                      # the same worker throughout
    logs = f.online_deployments.get_logs("blue", "ep-b")
    assert "ready in" in logs and "evicted" in logs and "reloaded in" in logs
    metrics = httpx.get(f"{f.server.status()['url']}/metrics").text
    for ep in ("ep-a", "ep-b"):   # evicted once each; ep-b also loaded again on demand
        assert re.search(rf'modelfleet_model_evictions_total{{[^}}]*endpoint="{ep}"[^}}]*}} 1\.0', metrics)
    assert re.search(r'modelfleet_model_load_duration_seconds_count{[^}]*endpoint="ep-b"[^}]*} 2\.0', metrics)

    worker = psutil.Process(a["pid"])
    with_models = worker.memory_info().rss
    for name in "abc":                                                 # memory goes back to the system
        f.online_endpoints.delete(f"ep-{name}")
    wait_until(lambda: worker.memory_info().rss < with_models - 40 * MiB, timeout=30)


def test_an_update_in_a_shared_worker_never_disturbs_its_neighbours(fleet, models_dir):
    f = fleet
    f.models.register("iris", models_dir / "iris", "1")
    f.models.register("iris", models_dir / "iris_v2", "2")
    f.models.register("wine", models_dir / "wine", "1")
    for endpoint, model in (("upd-ep", "iris:1"), ("nb-iris", "iris:1"), ("nb-wine", "wine:1")):
        _deploy(f, endpoint, model)
    before = {ep: _replica(f, ep) for ep in ("upd-ep", "nb-iris", "nb-wine")}
    assert {r["placement"] for r in before.values()} == {"shared"}
    wine_row = json.dumps({"data": [[13.2, 1.78, 2.14, 11.2, 100, 2.65, 2.76, 0.26, 1.28, 4.38, 1.05, 3.4, 1050]]})

    with Load(*_scoring(f, "upd-ep"), IRIS_BODY, threads=2) as updated, \
            Load(*_scoring(f, "nb-iris"), IRIS_BODY, threads=1) as nb_iris, \
            Load(*_scoring(f, "nb-wine"), wine_row.encode(), threads=1) as nb_wine:
        dep = f.online_deployments.update("blue", "upd-ep", model="iris:2")
        assert dep["model"] == "iris:2" and dep["provisioning_state"] == "Succeeded"
        served = updated.result.ok
        wait_until(lambda: updated.result.ok > served)
    for load in (updated, nb_iris, nb_wine):
        assert load.result.failed == [] and load.result.ok > 0

    assert _replica(f, "upd-ep")["id"] != before["upd-ep"]["id"]
    for ep in ("nb-iris", "nb-wine"):   # same replica, same worker, loaded once
        now = _replica(f, ep)
        assert (now["id"], now["pid"], now["loaded"]) == (before[ep]["id"], before[ep]["pid"], True)
        logs = f.online_deployments.get_logs("blue", ep, lines=1000)
        assert logs.count("ready in") == 1 and "reloaded" not in logs and "evicted" not in logs


def test_a_killed_worker_moves_its_models_and_no_request_fails(fleet, models_dir):
    f = fleet
    f.server.configure(shared_workers=2)
    f.models.register("iris", models_dir / "iris", "1")
    endpoints = [f"kill-{i}" for i in range(4)]
    for ep in endpoints:
        _deploy(f, ep, "iris:1")
    pids = {ep: _replica(f, ep)["pid"] for ep in endpoints}
    assert len(set(pids.values())) == 2                                 # spread over both workers
    victim = pids[endpoints[0]]
    moved = [ep for ep in endpoints if pids[ep] == victim]

    loads = [Load(*_scoring(f, ep), IRIS_BODY, threads=1) for ep in endpoints]
    for load in loads:
        load.__enter__()
    try:
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: not alive(victim), timeout=15)

        def settled():
            now = {ep: f.online_deployments.get("blue", ep)["replicas"] for ep in endpoints}
            return all(len(r) == 1 and r[0]["state"] == "ready" and r[0]["pid"] != victim and r[0]["loaded"]
                       for r in now.values())
        wait_until(settled, timeout=60)
        served = [load.result.ok for load in loads]
        wait_until(lambda: all(load.result.ok > n for load, n in zip(loads, served, strict=True)))
    finally:
        for load in loads:
            load.__exit__()
    for load in loads:
        assert load.result.failed == [] and load.result.ok > 0
    for ep in moved:
        assert "exited" in f.online_deployments.get_logs("blue", ep, lines=1000)


LEAKY = textwrap.dedent('''
    """A classifier whose code keeps memory at every load: what a worker recycle is for."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    KEPT = []

    class Leaky(LogisticRegression):
        def __setstate__(self, state):
            KEPT.append(np.ones(24 * 2**20 // 8))   # held by the module, never by the model
            super().__setstate__(state)
''')


def test_a_worker_whose_memory_keeps_growing_is_recycled_without_a_failed_request(fleet, tmp_path, monkeypatch):
    leaky_model = _importable(tmp_path, monkeypatch, "leaky_model", LEAKY)
    X, y = load_iris(return_X_y=True)
    for name in "ab":
        (tmp_path / name).mkdir()
        joblib.dump(leaky_model.Leaky(max_iter=1000).fit(X, y), tmp_path / name / "model.joblib")
    sys.modules.pop("leaky_model", None)

    f = fleet
    f.server.configure(shared_workers=1, shared_worker_memory="40Mi")   # one leaky model at a time
    for name in "ab":
        f.models.register(f"leaky-{name}", tmp_path / name, "1")
        _deploy(f, f"leak-{name}", f"leaky-{name}:1")
    first = _replica(f, "leak-a")["pid"]
    assert _replica(f, "leak-b")["pid"] == first

    with Load(*_scoring(f, "leak-a"), IRIS_BODY, threads=1) as on_a, \
            Load(*_scoring(f, "leak-b"), IRIS_BODY, threads=1) as on_b:   # each load evicts the other
        wait_until(lambda: _replica(f, "leak-a")["pid"] != first and _replica(f, "leak-b")["pid"] != first,
                   timeout=90)
        served = on_a.result.ok, on_b.result.ok
        wait_until(lambda: on_a.result.ok > served[0] and on_b.result.ok > served[1])
    assert on_a.result.failed == [] and on_b.result.failed == []
    wait_until(lambda: not alive(first), timeout=15)                   # its memory went with it


SLEEPY = textwrap.dedent('''
    """A classifier whose predict never returns for one input: a model call that hangs."""
    import time
    from sklearn.linear_model import LogisticRegression

    class Sleepy(LogisticRegression):
        def predict(self, X):
            if X[0][0] == 99:
                time.sleep(3600)
            return super().predict(X)
''')


def test_a_worker_stuck_in_a_model_call_is_killed_and_its_models_start_again_elsewhere(fleet, models_dir,
                                                                                        tmp_path, monkeypatch):
    sleepy = _importable(tmp_path, monkeypatch, "sleepy_model", SLEEPY)
    (tmp_path / "sleepy").mkdir()
    joblib.dump(sleepy.Sleepy(max_iter=1000).fit(*load_iris(return_X_y=True)), tmp_path / "sleepy" / "model.joblib")
    sys.modules.pop("sleepy_model", None)
    f = fleet
    f.server.configure(shared_workers=1)
    f.models.register("sleepy", tmp_path / "sleepy", "1")
    f.models.register("iris", models_dir / "iris", "1")
    quick = {"request_settings": {"request_timeout_ms": 1000}, "liveness_probe": {"period": 1, "failure_threshold": 2}}
    _deploy(f, "hang-ep", "sleepy:1", **quick)
    _deploy(f, "calm-ep", "iris:1", **quick)
    stuck = _replica(f, "hang-ep")["pid"]
    assert _replica(f, "calm-ep")["pid"] == stuck

    with pytest.raises(Exception, match="timed out"):   # the call hangs: 408, and the worker with it
        f.online_endpoints.invoke("hang-ep", {"data": [[99, 3.5, 1.4, 0.2]]})
    wait_until(lambda: not alive(stuck), timeout=60)
    def settled(ep):   # one ready replica, not in the stuck worker (none for a moment while it is replaced)
        replicas = f.online_deployments.get("blue", ep)["replicas"]
        return len(replicas) == 1 and replicas[0]["pid"] not in (None, stuck) and replicas[0]["state"] == "ready"
    wait_until(lambda: settled("hang-ep") and settled("calm-ep"), timeout=60)
    assert f.online_endpoints.invoke("calm-ep", {"data": IRIS_ROWS}) == [0, 2]
    assert f.online_endpoints.invoke("hang-ep", {"data": IRIS_ROWS}) == [0, 2]
    assert "run() is stuck" in f.online_deployments.get_logs("blue", "hang-ep", lines=1000)
    assert "killing it" in (f.workspace.logs_dir / "server.log").read_text()


def test_dedicated_placement_and_what_show_says(fleet, models_dir, tmp_path):
    f = fleet
    f.models.register("iris", models_dir / "iris", "1")
    shared = _deploy(f, "where-shared", "iris:1")
    own = _deploy(f, "where-own", "iris:1", placement="dedicated")
    env = _deploy(f, "where-env", "iris:1", environment_variables={"SEGMENT": "2"})
    assert (shared["placement"], own["placement"], env["placement"]) == ("shared", "dedicated", "dedicated")
    for dep in (shared, own, env):
        [r] = dep["replicas"]
        assert r["placement"] == dep["placement"] and r["loaded"] and r["last_load_ms"] > 0 and dep["loaded"]
    assert len({shared["replicas"][0]["pid"], own["replicas"][0]["pid"], env["replicas"][0]["pid"]}) == 3
    assert f.online_endpoints.invoke("where-own", {"data": IRIS_ROWS}) == [0, 2]

    moved = f.online_deployments.update("blue", "where-own", placement="shared")   # a rollout, like any change
    assert moved["placement"] == "shared" and moved["replicas"][0]["id"] != own["replicas"][0]["id"]
    assert f.online_deployments.update("blue", "where-own", instance_count=1)["placement"] == "shared"
    assert f.online_endpoints.invoke("where-own", {"data": IRIS_ROWS}) == [0, 2]
    with pytest.raises(InvalidInput, match="^placement: shared does not apply: environment_variables"):
        f.online_deployments.update("blue", "where-env", placement="shared")
