"""Endpoints on a real Ray cluster on 127.0.0.1: serving, rollouts and faults, as on local compute.

The tests that only serve on a cluster share one workspace and cluster (`fleet compute create`,
a head with token auth; a start costs seconds), each with endpoints of its own, deleted after it.
A test that stops its cluster, or runs the seed scripts in a workspace of their own, owns one;
those run first, so that the module's cluster is not left idle beside theirs. Every process of a
cluster is stopped by pid at teardown, a second node's too.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal

import httpx
import psutil
import pytest

from modelfleet.backends.ray import cluster as ray_cluster

from .conftest import IRIS_ROWS, endpoints_deleted, fleet_in
from .helpers import (RAY_GROUP, Load, compute_row, kill_ray_node, run_seed_scripts, scoring_code, second_ray_node,
                      wait_until)

pytestmark = [pytest.mark.slow, RAY_GROUP]

ECHO_PY = '''
import json, os, time
def init():
    if os.environ.get("FAIL_INIT"):
        raise RuntimeError("init exploded on purpose")
    print("echo init on", os.environ.get("WHO"), flush=True)
def run(raw):
    data = json.loads(raw)
    if data.get("raise"):
        raise ValueError("model raised on purpose")
    if data.get("sleep"):
        time.sleep(data["sleep"])
    return {"who": os.environ.get("WHO"), "pid": os.getpid(), "data": data.get("data")}
'''


@contextlib.contextmanager
def ray_compute(fleet, models_dir, tmp_path):
    """`raydev`, a cluster the workspace owns, with iris 1 and 2 registered; stopped afterwards."""
    fleet.computes.create("raydev", num_cpus=2)
    compute = compute_row(fleet, "raydev")   # its row: address, token, directory
    fleet.models.register("iris", models_dir / "iris", "1")
    fleet.models.register("iris", models_dir / "iris_v2", "2")
    try:
        yield fleet, compute, scoring_code(tmp_path / "code", ECHO_PY)
    finally:
        fleet.server.stop()
        ray_cluster.stop_local(compute["temp_dir"])


@pytest.fixture(scope="module")
def shared_ray(tmp_path_factory, models_dir):
    tmp = tmp_path_factory.mktemp("ray")
    with fleet_in(tmp / "home") as fleet, ray_compute(fleet, models_dir, tmp) as started:
        yield started


@pytest.fixture
def ray_fleet(shared_ray):
    """The module's cluster; the endpoints a test made are deleted after it."""
    with endpoints_deleted(shared_ray[0]):
        yield shared_ray


@pytest.fixture
def own_ray_fleet(fleet, models_dir, tmp_path):
    """A cluster of the test's own: for a test that stops it."""
    with ray_compute(fleet, models_dir, tmp_path) as started:
        yield started


@pytest.fixture
def second_node(ray_fleet):
    """A second Ray node on this machine, joined to the compute's head."""
    fleet, compute, _ = ray_fleet
    with second_ray_node(fleet, compute) as temp_dir:
        yield temp_dir


kill_node = kill_ray_node


def client(fleet, endpoint):
    ep = fleet.online_endpoints.get(endpoint)
    key = fleet.online_endpoints.get_keys(endpoint)["primaryKey"]
    return ep["scoring_uri"], {"authorization": f"Bearer {key}", "content-type": "application/json"}


def post(url, headers, body, **kw):
    return httpx.post(url, content=json.dumps(body).encode(), headers={**headers, **kw.pop("extra", {})},
                      timeout=30, **kw)


# -- tests with a cluster of their own, first: the module's cluster starts after them ----------------

def test_a_detached_or_lost_cluster_is_reported_and_its_endpoints_come_back_with_it(own_ray_fleet, tmp_path):
    fleet, compute, code = own_ray_fleet
    # the same cluster attached under a second name, then detached: said in show, and re-attached
    fleet.computes.attach("raylink", compute["address"], auth_token=compute["auth_token"])
    fleet.online_endpoints.create("link-ep", compute="raylink")
    fleet.online_deployments.create("blue", "link-ep", "iris:1")
    fleet.computes.detach("raylink")
    detached = wait_until(lambda: (lambda d: d if d["fault"] else None)(fleet.online_deployments.get("blue", "link-ep")))
    assert "'raylink' is not attached" in detached["fault"]
    fleet.computes.attach("raylink", compute["address"], auth_token=compute["auth_token"])
    wait_until(lambda: fleet.online_deployments.get("blue", "link-ep")["fault"] is None)
    # the cluster lost: Ray endpoints say so, local ones serve on
    fleet.online_endpoints.create("lost-ep", compute="raydev")
    fleet.online_endpoints.create("calm-ep")
    fleet.online_deployments.create("blue", "lost-ep", "iris:1")
    fleet.online_deployments.create("blue", "calm-ep", "iris:1")
    calm = [r["pid"] for r in fleet.online_deployments.get("blue", "calm-ep")["replicas"]]
    ray_cluster.stop_local(compute["temp_dir"], remove=False)
    lost = wait_until(lambda: (lambda d: d if d["health"] == "Unavailable" and d["fault"] else None)(
        fleet.online_deployments.get("blue", "lost-ep")), timeout=120)
    assert "raydev" in lost["fault"]
    assert fleet.online_endpoints.invoke("calm-ep", {"data": IRIS_ROWS})      # local endpoints untouched
    assert [r["pid"] for r in fleet.online_deployments.get("blue", "calm-ep")["replicas"]] == calm
    ray_cluster.start_local("raydev", tmp_path / "again", 2, address=compute["address"],
                            auth_token=compute["auth_token"], temp_dir=compute["temp_dir"])
    wait_until(lambda: fleet.online_deployments.get("blue", "lost-ep")["health"] == "Healthy", timeout=120)
    assert fleet.online_endpoints.invoke("lost-ep", {"data": IRIS_ROWS})   # no command re-run


def test_the_seed_scripts_run_unchanged_with_their_endpoints_on_ray(fleet_home, tmp_path):
    """deploy.sh with COMPUTE_TYPE=aks, as the seed's AKS variant: every endpoint on the Ray compute."""
    from modelfleet import Fleet
    with Fleet() as fleet:
        fleet.computes.create("raydev", num_cpus=2)
        compute = compute_row(fleet, "raydev")
        try:
            run_seed_scripts(fleet_home, tmp_path, {"COMPUTE_TYPE": "aks"})
            assert {e["name"]: e["compute"] for e in fleet.online_endpoints.list()} == {
                "aci-model-a": "raydev", "aci-model-b": "raydev", "aci-model-c": "raydev"}
            assert all(r["compute"] == "raydev" for d in fleet.online_deployments.list() for r in d["replicas"])
        finally:
            fleet.server.stop()
            ray_cluster.stop_local(compute["temp_dir"])


# -- tests on the module's cluster -------------------------------------------------------------------

def test_a_ray_endpoint_serves_like_a_local_one(ray_fleet, models_dir):
    fleet, compute, code = ray_fleet
    fleet.online_endpoints.create("ray-ep", compute="raydev")
    fleet.online_endpoints.create("local-ep")
    blue = fleet.online_deployments.create("blue", "ray-ep", "iris:1", instance_count=2,
                                           batching={"max_batch_size": 8, "max_batch_wait_ms": 2})
    green = fleet.online_deployments.create("green", "ray-ep", "iris:1", code_configuration=code,
                                            environment_variables={"WHO": "green"},
                                            request_settings={"request_timeout_ms": 500,
                                                              "max_concurrent_requests_per_instance": 1,
                                                              "max_queue_size": 1, "max_body_bytes": 2000})
    fleet.online_deployments.create("blue", "local-ep", "iris:1")
    assert blue["provisioning_state"] == green["provisioning_state"] == "Succeeded"
    assert {r["compute"] for r in blue["replicas"]} == {"raydev"} and len(blue["replicas"]) == 2
    url, h = client(fleet, "ray-ep")
    local_url, local_h = client(fleet, "local-ep")
    # the same model answers the same on Ray and locally; keys are required
    assert post(url, h, {"data": IRIS_ROWS}).json() == post(local_url, local_h, {"data": IRIS_ROWS}).json()
    assert post(url, {"content-type": "application/json"}, {"data": IRIS_ROWS}).status_code == 401
    # header targeting, and the request settings' statuses
    extra = {"azureml-model-deployment": "green"}
    assert post(url, h, {"data": 1}, extra=extra).json()["who"] == "green"
    assert post(url, h, {"data": "x" * 5000}, extra=extra).status_code == 413
    r = post(url, h, {"raise": True}, extra=extra)
    assert r.status_code == 424 and "model raised on purpose" in r.json()["error"]["message"]
    assert post(url, h, {"sleep": 1.0}, extra=extra).status_code == 408
    # V2
    v2 = f"{url.rsplit('/endpoints/', 1)[0]}/v2/models/ray-ep/versions/blue/infer"
    r = httpx.post(v2, json={"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64",
                                         "data": sum(IRIS_ROWS, [])}]}, headers=h, timeout=30)
    assert r.status_code == 200 and r.json()["outputs"][0]["data"] == post(url, h, {"data": IRIS_ROWS}).json()
    # traffic split and mirror go on as locally
    fleet.online_endpoints.update("ray-ep", traffic={"blue": 100}, mirror_traffic={"green": 10})
    assert all(isinstance(post(url, h, {"data": IRIS_ROWS}).json(), list) for _ in range(20))
    # logs come from the replicas, wherever they run: green's replica that the 408 above left
    # stuck was killed, and its replacement's own log (the init line) shows once it has started
    logs = wait_until(lambda: (lambda text: text if "echo init on green" in text else None)(
        fleet.online_deployments.get_logs("green", "ray-ep")), timeout=90)
    assert "placed by Ray" in logs
    # every socket the cluster and its replicas listen on is on loopback
    listening = listening_addresses(compute["temp_dir"])
    assert listening and all(addr in ("127.0.0.1", "::1", "::ffff:127.0.0.1") for addr, _ in listening), listening


def listening_addresses(temp_dir: str) -> list[tuple[str, int]]:
    """Every address a process of the cluster (replica actors included) listens on."""
    out = set()
    for p in ray_cluster.cluster_processes(temp_dir):
        try:
            for c in p.net_connections(kind="inet"):
                if c.status == psutil.CONN_LISTEN:
                    out.add((c.laddr.ip, c.laddr.port))
        except psutil.Error:
            pass
    return sorted(out)


def test_onnx_and_mlflow_models_serve_on_ray(ray_fleet, tmp_path):
    import mlflow.sklearn
    import skl2onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    fleet, _, _ = ray_fleet
    x, y = load_iris(return_X_y=True)
    clf = LogisticRegression(max_iter=500).fit(x, y)
    (tmp_path / "onnx").mkdir()
    onx = skl2onnx.convert_sklearn(clf, initial_types=[("x", FloatTensorType([None, 4]))])
    (tmp_path / "onnx" / "model.onnx").write_bytes(onx.SerializeToString())
    mlflow.sklearn.save_model(clf, str(tmp_path / "mlflow"), serialization_format="cloudpickle")
    fleet.models.register("iris-onnx", tmp_path / "onnx", "1")
    fleet.models.register("iris-mlflow", tmp_path / "mlflow", "1")
    fleet.online_endpoints.create("onnx-ep", compute="raydev")
    fleet.online_endpoints.create("mlflow-ep", compute="raydev")
    fleet.online_deployments.create("blue", "onnx-ep", "iris-onnx:1")
    fleet.online_deployments.create("blue", "mlflow-ep", "iris-mlflow:1")
    expected = clf.predict(IRIS_ROWS).tolist()
    assert fleet.online_endpoints.invoke("onnx-ep", {"data": IRIS_ROWS}) == expected
    assert fleet.online_endpoints.invoke("mlflow-ep", {"data": IRIS_ROWS}) == expected


def test_an_environment_on_ray_is_built_by_ray_from_the_same_pins(ray_fleet, tmp_path):
    fleet, _, _ = ray_fleet
    fleet.environments.create("tab", requirements=["tabulate==0.9.0"])   # a package the server lacks
    code = scoring_code(tmp_path / "tab", "def run(raw):\n    import tabulate\n    return tabulate.__version__\n")
    fleet.online_endpoints.create("env-ep", compute="raydev")
    fleet.online_deployments.create("blue", "env-ep", "iris:1", code_configuration=code, environment="tab:1")
    assert fleet.online_endpoints.invoke("env-ep", {"data": 1}) == "0.9.0"
    shown = fleet.environments.get("tab", "1").to_dict()
    assert "tabulate==0.9.0" in shown["lock"]["requirements"] and not shown["built"]  # Ray built it, on its node


def test_rolling_update_on_ray_drops_nothing_and_a_failed_version_rolls_back(ray_fleet):
    fleet, _, code = ray_fleet
    fleet.online_endpoints.create("roll-ep", compute="raydev")
    fleet.online_deployments.create("blue", "roll-ep", "iris:1", code_configuration=code, instance_count=2,
                                    environment_variables={"WHO": "v1"})
    url, h = client(fleet, "roll-ep")
    with Load(url, h["authorization"][7:], b'{"data": 1}') as load:
        dep = fleet.online_deployments.update("blue", "roll-ep", environment_variables={"WHO": "v2"})
        wait_until(lambda: load.result.ok > 0 and post(url, h, {"data": 1}).json()["who"] == "v2")
    assert load.result.failed == [] and dep["provisioning_state"] == "Succeeded"
    with Load(url, h["authorization"][7:], b'{"data": 1}') as load:
        with pytest.raises(Exception, match="init exploded on purpose"):
            fleet.online_deployments.update("blue", "roll-ep", environment_variables={"WHO": "v3", "FAIL_INIT": "1"})
    assert load.result.failed == []
    dep = fleet.online_deployments.get("blue", "roll-ep")
    assert dep["provisioning_state"] == "Failed" and dep["environment_variables"] == {"WHO": "v2"}
    assert post(url, h, {"data": 1}).json()["who"] == "v2"


def test_replicas_spread_over_nodes_and_survive_a_killed_worker_and_a_killed_node(ray_fleet, second_node):
    fleet, compute, code = ray_fleet
    fleet.online_endpoints.create("spread-ep", compute="raydev")
    dep = fleet.online_deployments.create("blue", "spread-ep", "iris:1", code_configuration=code,
                                          instance_count=2, environment_variables={"WHO": "blue"})
    assert len({r["node_id"] for r in dep["replicas"]}) == 2      # one on each node
    url, h = client(fleet, "spread-ep")
    with Load(url, h["authorization"][7:], b'{"data": 1}') as load:
        victim = dep["replicas"][0]["pid"]
        os.kill(victim, signal.SIGKILL)                          # a replica's worker process dies
        wait_until(lambda: (lambda d: len(d["replicas"]) == 2 and victim not in [r["pid"] for r in d["replicas"]])(
            fleet.online_deployments.get("blue", "spread-ep")), timeout=90)
        kill_node(second_node)                                   # then a whole node
        head = {n["node_id"] for n in fleet.computes.show("raydev")["nodes"] if n["alive"]}
        wait_until(lambda: (lambda d: len(d["replicas"]) == 2 and {r["node_id"] for r in d["replicas"]} <= head)(
            fleet.online_deployments.get("blue", "spread-ep")), timeout=120)
        served = load.result.ok
        wait_until(lambda: load.result.ok > served)
    assert load.result.failed == []
