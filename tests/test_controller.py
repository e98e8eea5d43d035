"""The desired-state machine on a real server: restores that fail, reverts mid-rollout, stale pids."""

from __future__ import annotations

import subprocess

import orjson
import pytest

from modelfleet.domain.errors import DeploymentFailed
from modelfleet.schema.documents import DeploymentSpec
from modelfleet.schema.validation import validate

from .helpers import scoring_code, wait_until

pytestmark = pytest.mark.slow  # every test here starts a server and replicas

FLAKY_PY = '''
import os, time
def init():
    if os.environ.get("SLOW_FAIL"):
        open(os.environ["SLOW_FAIL"], "w").close()  # tells the test this version is starting
        time.sleep(1.5)
        raise RuntimeError("this version never starts")
    if os.path.exists(os.environ.get("BLOCKER", "/nonexistent")):
        raise RuntimeError("a dependency is not up yet")
def run(raw):
    return os.environ.get("WHO", "?")
'''


@pytest.fixture
def flaky(fleet, models_dir, tmp_path):
    fleet.models.register("iris", models_dir / "iris", "1")
    return fleet, scoring_code(tmp_path / "code", FLAKY_PY)


def test_a_failed_restore_is_retried_until_it_serves(flaky, tmp_path):
    fleet, code = flaky
    blocker = tmp_path / "blocker"
    fleet.online_endpoints.create("restore-ep")
    fleet.online_deployments.create("blue", "restore-ep", "iris:1", code_configuration=code,
                                    environment_variables={"BLOCKER": str(blocker), "WHO": "blue"})
    fleet.server.stop()
    blocker.write_text("down")        # the restore after the restart fails ...
    fleet.server.start()
    failed = wait_until(lambda: (lambda d: d if d["provisioning_state"] == "Failed" else None)(
        fleet.online_deployments.get("blue", "restore-ep")), timeout=30)
    assert "a dependency is not up yet" in failed["error"]
    blocker.unlink()                  # ... until the dependency is back: then it serves again
    wait_until(lambda: fleet.online_deployments.get("blue", "restore-ep")["replicas"], timeout=60)
    assert fleet.online_endpoints.invoke("restore-ep", {}) == "blue"
    assert fleet.online_deployments.get("blue", "restore-ep")["provisioning_state"] == "Succeeded"


def test_reverting_during_a_rollout_settles_on_what_serves(flaky, tmp_path):
    fleet, code = flaky
    fleet.online_endpoints.create("revert-ep")
    good = fleet.online_deployments.create("blue", "revert-ep", "iris:1", code_configuration=code,
                                           environment_variables={"WHO": "good"})
    pids = [r["pid"] for r in good["replicas"]]
    starting = tmp_path / "bad-version-starting"
    fleet.online_deployments.update("blue", "revert-ep", environment_variables={"SLOW_FAIL": str(starting)},
                                    wait=False)
    wait_until(starting.exists)  # the bad version is starting; now put back exactly what serves
    original = validate(DeploymentSpec, {"name": "blue", "endpoint_name": "revert-ep", "model": "iris:1",
                                         "code_configuration": code, "environment_variables": {"WHO": "good"}})
    back = fleet.online_deployments.create_or_update(original, create=False, timeout=60)
    assert back["provisioning_state"] == "Succeeded"
    # the abandoned rollout has failed by now, and must not change the verdict
    wait_until(lambda: "this version never starts" in fleet.online_deployments.get_logs("blue", "revert-ep"))
    dep = fleet.online_deployments.get("blue", "revert-ep")
    assert dep["provisioning_state"] == "Succeeded" and [r["pid"] for r in dep["replicas"]] == pids
    assert fleet.online_endpoints.invoke("revert-ep", {}) == "good"


def test_a_failed_update_then_a_settings_change_does_not_hang(flaky, tmp_path):
    fleet, code = flaky
    fleet.online_endpoints.create("settle-ep")
    fleet.online_deployments.create("blue", "settle-ep", "iris:1", code_configuration=code)
    with pytest.raises(DeploymentFailed, match="never starts"):
        fleet.online_deployments.update("blue", "settle-ep", environment_variables={"SLOW_FAIL": str(tmp_path / "x")})
    dep = fleet.online_deployments.update("blue", "settle-ep", request_settings={"request_timeout_ms": 9000},
                                          timeout=30)
    assert dep["provisioning_state"] == "Succeeded" and dep["request_settings"]["request_timeout_ms"] == 9000


def test_a_stale_server_file_never_signals_another_process(fleet_home):
    from modelfleet import Fleet
    f = Fleet()
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        server_file = f.workspace.server_file
        server_file.parent.mkdir(parents=True, exist_ok=True)
        server_file.write_bytes(orjson.dumps({"pid": stranger.pid, "url": "http://127.0.0.1:9", "token": "x",
                                              "host": "127.0.0.1", "port": 9, "started_at": 0}))
        assert f.server.status()["status"] == "stopped"
        assert f.server.stop() is None
        assert stranger.poll() is None                 # still alive: nobody signalled it
        assert f.online_endpoints.list() == []         # a real server starts in its place
        assert f.server.status()["pid"] != stranger.pid
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()
        f.close()
