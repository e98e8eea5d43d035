"""End to end on local compute: real server and replica processes on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal

import httpx
import psutil
import pytest
from click.testing import CliRunner

from modelfleet.cli.main import cli
from modelfleet.domain.errors import Conflict, DeploymentFailed, FleetError, InvalidInput, NotFound

from .conftest import IRIS_ROWS, endpoints_deleted, fleet_in
from .helpers import Load, alive, wait_until

pytestmark = pytest.mark.slow  # every test here starts a server and replicas

SCORE_PY = '''
import json, os, time
model = None
def init():
    global model
    if os.environ.get("FAIL_INIT"):
        raise RuntimeError("init exploded on purpose")
    files = sorted(os.listdir(os.environ["AZUREML_MODEL_DIR"]))
    model = {"files": files, "same": os.environ["AZUREML_MODEL_DIR"] == os.environ["FLEET_MODEL_DIR"]}
def run(raw_data):
    data = json.loads(raw_data)
    if data.get("crash"):
        os._exit(3)
    if data.get("raise"):
        raise ValueError("bad input on purpose")
    if data.get("sleep"):
        time.sleep(data["sleep"])
    return {"echo": data, "model": model, "pid": os.getpid()}
'''


def _post(url, key, body, headers=None, timeout=30):
    h = {"content-type": "application/json", **(headers or {})}
    if key:
        h["authorization"] = f"Bearer {key}"
    return httpx.post(url, content=json.dumps(body), headers=h, timeout=timeout)


@pytest.fixture
def iris(fleet, models_dir):
    """A workspace of the test's own with iris 1 and 2: for a test that stops the server or deletes a model."""
    fleet.models.register("iris", models_dir / "iris", "1")
    fleet.models.register("iris", models_dir / "iris_v2", "2")
    return fleet


@pytest.fixture(scope="module")
def iris_workspace(tmp_path_factory, models_dir):
    with fleet_in(tmp_path_factory.mktemp("serving") / "home") as f:
        f.models.register("iris", models_dir / "iris", "1")
        f.models.register("iris", models_dir / "iris_v2", "2")
        yield f


@pytest.fixture
def shared_iris(iris_workspace):
    """The module's workspace with iris 1 and 2 (a server start less per test); each test makes
    endpoints of its own names, deleted after it."""
    with endpoints_deleted(iris_workspace) as f:
        yield f


@pytest.fixture
def code_dir(tmp_path):
    d = tmp_path / "onlinescoring"
    d.mkdir()
    (d / "score.py").write_text(SCORE_PY)
    return d


def test_create_invoke_http_and_auth(shared_iris):
    f = shared_iris
    ep = f.online_endpoints.create("iris-ep", description="flowers")
    dep = f.online_deployments.create("blue", "iris-ep", "iris:1")
    assert dep["provisioning_state"] == "Succeeded" and len(dep["replicas"]) == 1
    ep = f.online_endpoints.get("iris-ep")
    assert ep["traffic"] == {"blue": 100} and "primaryKey" not in json.dumps(ep)
    keys = f.online_endpoints.get_keys("iris-ep")
    url = ep["scoring_uri"]
    r = _post(url, keys["primaryKey"], {"data": IRIS_ROWS})
    assert r.status_code == 200 and r.json() == [0, 2]
    assert r.headers["azureml-model-deployment"] == "blue" and r.headers["x-request-id"]
    assert _post(url, keys["secondaryKey"], {"input_data": IRIS_ROWS}).json() == [0, 2]
    for key in (None, "wrong", keys["primaryKey"] + "x"):
        r = _post(url, key, {"data": IRIS_ROWS})
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized" and r.json()["request_id"]
    assert f.online_endpoints.invoke("iris-ep", {"inputs": IRIS_ROWS}) == [0, 2]
    new = f.online_endpoints.regenerate_keys("iris-ep", "primary")
    assert new["primaryKey"] != keys["primaryKey"] and new["secondaryKey"] == keys["secondaryKey"]
    assert _post(url, keys["primaryKey"], {"data": IRIS_ROWS}).status_code == 401
    assert _post(url, new["primaryKey"], {"data": IRIS_ROWS}).status_code == 200
    bad = _post(url, new["primaryKey"], {"nothing": 1})
    assert bad.status_code == 400 and "data" in bad.json()["error"]["message"]
    assert _post(url.replace("iris-ep", "nope"), None, {}).status_code == 404


def test_auth_mode_none_and_cli_invoke(shared_iris, tmp_path):
    f = shared_iris
    f.online_endpoints.create("open-ep", auth_mode="none")
    assert f.online_deployments.create("blue", "open-ep", "iris@latest")["model"] == "iris:2"
    url = f.online_endpoints.get("open-ep")["scoring_uri"]
    assert _post(url, None, {"data": IRIS_ROWS}).json() == [0, 2]
    (tmp_path / "req.json").write_text(json.dumps({"data": IRIS_ROWS}))
    r = CliRunner().invoke(cli, ["online-endpoint", "invoke", "--name", "open-ep", "--request-file",
                                 str(tmp_path / "req.json")])
    assert r.exit_code == 0 and json.loads(r.stdout) == [0, 2]
    r = CliRunner().invoke(cli, ["online-endpoint", "show", "--name", "open-ep", "-o", "json"])
    assert json.loads(r.stdout)["scoring_uri"] == url


def test_scoring_script_contract(shared_iris, code_dir):
    f = shared_iris
    f.online_endpoints.create("custom-ep")
    f.online_deployments.create("blue", "custom-ep", "iris:1",
                                code_configuration={"code": str(code_dir), "scoring_script": "score.py"})
    out = f.online_endpoints.invoke("custom-ep", {"hello": "world"})
    assert out["echo"] == {"hello": "world"}
    assert out["model"] == {"files": ["iris"], "same": True}  # the registered folder keeps its name
    with pytest.raises(Exception, match="424.*bad input on purpose"):
        f.online_endpoints.invoke("custom-ep", {"raise": True})
    assert f.online_endpoints.invoke("custom-ep", {"after": 1})["echo"] == {"after": 1}  # still serving


def test_custom_model_without_script_is_refused(fleet, tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"\0")
    fleet.models.register("raw", tmp_path / "weights.bin")
    fleet.online_endpoints.create("raw-ep")
    with pytest.raises(InvalidInput, match="scoring-script"):
        fleet.online_deployments.create("blue", "raw-ep", "raw:1")
    assert fleet.online_deployments.list("raw-ep") == []


def test_update_under_load_drops_nothing_and_spares_neighbours(shared_iris):
    f = shared_iris
    for name in ("upd-ep", "other-ep"):
        f.online_endpoints.create(name)
        f.online_deployments.create("blue", name, "iris:1")
    other_pids = [r["pid"] for r in f.online_deployments.get("blue", "other-ep")["replicas"]]
    key = lambda e: f.online_endpoints.get_keys(e)["primaryKey"]
    body = json.dumps({"data": IRIS_ROWS}).encode()
    with Load(f.online_endpoints.get("upd-ep")["scoring_uri"], key("upd-ep"), body, threads=4) as upd, \
         Load(f.online_endpoints.get("other-ep")["scoring_uri"], key("other-ep"), body, threads=2) as other:
        dep = f.online_deployments.update("blue", "upd-ep", model="iris:2")
        assert dep["model"] == "iris:2"
        dep = f.online_deployments.update("blue", "upd-ep", model="iris:1", instance_count=2)
        assert len(dep["replicas"]) == 2
        # both endpoints keep answering after the last update
        served = upd.result.ok, other.result.ok
        wait_until(lambda: upd.result.ok > served[0] and other.result.ok > served[1])
    assert upd.result.failed == [] and other.result.failed == []
    assert [r["pid"] for r in f.online_deployments.get("blue", "other-ep")["replicas"]] == other_pids


def test_broken_update_rolls_back(shared_iris, code_dir):
    f = shared_iris
    f.online_endpoints.create("rb-ep")
    f.online_deployments.create("blue", "rb-ep", "iris:1")
    old = f.online_deployments.get("blue", "rb-ep")
    with pytest.raises(DeploymentFailed) as info:
        f.online_deployments.update("blue", "rb-ep", model="iris:2", environment_variables={"FAIL_INIT": "1"},
                                    code_configuration={"code": str(code_dir), "scoring_script": "score.py"})
    assert "init exploded on purpose" in info.value.message
    assert "Traceback" in (info.value.detail or "")
    dep = f.online_deployments.get("blue", "rb-ep")
    assert dep["provisioning_state"] == "Failed" and dep["model"] == "iris:1"
    assert [r["pid"] for r in dep["replicas"]] == [r["pid"] for r in old["replicas"]]
    assert f.online_endpoints.invoke("rb-ep", {"data": IRIS_ROWS}) == [0, 2]
    assert "init exploded on purpose" in f.online_deployments.get_logs("blue", "rb-ep")
    # the CLI prints the init error and exits non-zero
    r = CliRunner().invoke(cli, ["online-deployment", "update", "--name", "blue", "--endpoint", "rb-ep",
                                 "--env", "FAIL_INIT=1", "--code", str(code_dir), "--scoring-script", "score.py"])
    assert r.exit_code == 1 and "init exploded on purpose" in r.stderr, (r.exit_code, r.stderr, r.output)
    # a good update afterwards works
    assert f.online_deployments.update("blue", "rb-ep", model="iris:2")["provisioning_state"] == "Succeeded"


def test_killed_replica_is_restarted_and_requests_retried(shared_iris):
    f = shared_iris
    f.online_endpoints.create("kill-ep")
    dep = f.online_deployments.create("blue", "kill-ep", "iris:1", instance_count=2)
    pids = [r["pid"] for r in dep["replicas"]]
    url = f.online_endpoints.get("kill-ep")["scoring_uri"]
    key = f.online_endpoints.get_keys("kill-ep")["primaryKey"]
    with Load(url, key, json.dumps({"data": IRIS_ROWS}).encode(), threads=4) as load:
        os.kill(pids[0], signal.SIGKILL)
        new = wait_until(lambda: (lambda rs: rs if len(rs) == 2 and pids[0] not in rs else None)(
            [r["pid"] for r in f.online_deployments.get("blue", "kill-ep")["replicas"]]), timeout=30)
        served = load.result.ok
        wait_until(lambda: load.result.ok > served)  # still answering with the replacement in place
    assert load.result.failed == []
    assert pids[1] in new
    assert "exited with code" in f.online_deployments.get_logs("blue", "kill-ep", lines=500)


def test_crashing_run_only_affects_its_deployment(shared_iris, code_dir):
    f = shared_iris
    f.online_endpoints.create("crash-ep")
    f.online_deployments.create("blue", "crash-ep", "iris:1",
                                code_configuration={"code": str(code_dir), "scoring_script": "score.py"})
    f.online_endpoints.create("calm-ep")
    f.online_deployments.create("blue", "calm-ep", "iris:1")
    pid = f.online_deployments.get("blue", "crash-ep")["replicas"][0]["pid"]
    with pytest.raises(FleetError, match="502.*exited while handling"):
        f.online_endpoints.invoke("crash-ep", {"crash": True})
    assert f.online_endpoints.invoke("calm-ep", {"data": IRIS_ROWS}) == [0, 2]
    wait_until(lambda: [r for r in f.online_deployments.get("blue", "crash-ep")["replicas"] if r["pid"] != pid])
    assert f.online_endpoints.invoke("crash-ep", {"ok": 1})["echo"] == {"ok": 1}
    assert "exited with code 3" in f.online_deployments.get_logs("blue", "crash-ep", lines=500)


def test_server_restart_restores_serving(iris):
    f = iris
    f.online_endpoints.create("keep-ep")
    f.online_deployments.create("blue", "keep-ep", "iris:1")
    keys = f.online_endpoints.get_keys("keep-ep")
    old_pids = [r["pid"] for r in f.online_deployments.get("blue", "keep-ep")["replicas"]]
    f.server.stop()
    for pid in old_pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    f.server.start()
    wait_until(lambda: f.online_deployments.get("blue", "keep-ep")["replicas"], timeout=30)
    ep = f.online_endpoints.get("keep-ep")
    r = _post(ep["scoring_uri"], keys["primaryKey"], {"data": IRIS_ROWS})
    assert r.status_code == 200 and r.json() == [0, 2]


def test_server_kill_9_leaves_no_orphans_and_restores(iris):
    f = iris
    f.online_endpoints.create("k9-ep")
    f.online_deployments.create("blue", "k9-ep", "iris:1", instance_count=2)
    f.online_endpoints.update("k9-ep", traffic={"blue": 100})
    keys = f.online_endpoints.get_keys("k9-ep")
    server_pid = f.server.status()["pid"]
    replica_pids = [r["pid"] for r in f.online_deployments.get("blue", "k9-ep")["replicas"]]
    os.kill(server_pid, signal.SIGKILL)
    wait_until(lambda: not any(alive(p) for p in replica_pids), timeout=10)
    assert f.server.status()["status"] == "stopped"
    f.server.start()
    wait_until(lambda: len(f.online_deployments.get("blue", "k9-ep")["replicas"]) == 2, timeout=30)
    assert f.online_endpoints.get_keys("k9-ep") == keys
    ep = f.online_endpoints.get("k9-ep")
    assert ep["traffic"] == {"blue": 100}
    assert f.online_deployments.get("blue", "k9-ep")["model"] == "iris:1"
    assert _post(ep["scoring_uri"], keys["primaryKey"], {"data": IRIS_ROWS}).json() == [0, 2]


def test_delete_endpoint_stops_its_replicas(iris):
    f = iris
    f.online_endpoints.create("del-ep")
    # a process of its own, to see it stop (a shared worker goes on serving other models)
    pids = [r["pid"] for r in f.online_deployments.create("blue", "del-ep", "iris:1",
                                                          placement="dedicated")["replicas"]]
    with pytest.raises(Conflict, match="deployed by del-ep/blue"):
        f.models.delete("iris", "1")
    f.online_endpoints.delete("del-ep")
    f.models.delete("iris", "1")  # no deployment uses it any more
    wait_until(lambda: not any(alive(p) for p in pids), timeout=15)
    assert [e["name"] for e in f.online_endpoints.list()] == []


def test_endpoint_rules(fleet):
    with pytest.raises(InvalidInput, match="3-32"):
        fleet.online_endpoints.create("ab")
    with pytest.raises(NotFound, match="compute 'aks' not found"):
        fleet.online_endpoints.create("good-name", compute="aks")
    r = CliRunner().invoke(cli, ["online-endpoint", "create", "--name", "x1y", "--compute", "k8s/x"])
    assert r.exit_code == 2 and "invalid compute name 'k8s/x'" in r.stderr
    fleet.online_endpoints.create("good-name")
    with pytest.raises(Exception, match="already exists"):
        fleet.online_endpoints.create("good-name")


def test_server_commands(fleet_home):
    r = CliRunner().invoke(cli, ["server", "status", "-o", "json"])
    assert json.loads(r.stdout)["status"] == "stopped"
    r = CliRunner().invoke(cli, ["server", "start", "-o", "json"])
    info = json.loads(r.stdout)
    assert r.exit_code == 0 and info["host"] == "127.0.0.1"
    server_file = fleet_home / "workspaces" / "default" / "run" / "server.json"
    assert oct(server_file.stat().st_mode & 0o777) == "0o600"
    assert "token" not in info
    assert httpx.get(f"{info['url']}/api/health").status_code == 401
    assert httpx.get(f"{info['url']}/openapi.json").status_code == 200
    r = CliRunner().invoke(cli, ["server", "stop", "-o", "json"])
    assert json.loads(r.stdout)["status"] == "stopped"
    assert not psutil.pid_exists(info["pid"]) or psutil.Process(info["pid"]).status() == psutil.STATUS_ZOMBIE
