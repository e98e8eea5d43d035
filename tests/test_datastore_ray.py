"""Ray replicas read their model from the workspace's default datastore into their own node's
cache, not from the server: a real Ray cluster on 127.0.0.1 with a second node (its own cache
folder), Azurite as the store, a model trained in the test. The server's copy of the model is
taken away while Ray replicas start; with the store stopped, a replica starting on a node whose
cache holds the model reads nothing remote, and serving goes on."""

from __future__ import annotations

import httpx
import joblib
import pytest

from modelfleet.backends.ray import cluster as ray_cluster

from .azurite import ACCOUNT, KEY, azurite  # noqa: F401  (a fixture)
from .conftest import IRIS_ROWS
from .helpers import RAY_GROUP, compute_row, iris_score_py, scoring_code, second_ray_node

pytestmark = [pytest.mark.slow, RAY_GROUP]

SCORE_PY = iris_score_py("score.py")


@pytest.fixture
def two_nodes(fleet, tmp_path, monkeypatch):
    """A Ray compute whose head caches in head-cache/, and a second node caching in node2-cache/."""
    caches = {"head": tmp_path / "head-cache", "node2": tmp_path / "node2-cache"}
    monkeypatch.setenv("FLEET_NODE_CACHE", str(caches["head"]))   # the server, and the head it starts, inherit it
    fleet.computes.create("raydev", num_cpus=2)
    compute = compute_row(fleet, "raydev")
    try:
        with second_ray_node(fleet, compute, {"FLEET_NODE_CACHE": str(caches["node2"])}):
            yield caches
    finally:
        fleet.server.stop()
        ray_cluster.stop_local(compute["temp_dir"])


def test_ray_nodes_read_the_model_from_the_store_into_their_own_cache(fleet, fleet_home, azurite, two_nodes,
                                                                      models_dir, tmp_path):
    fleet.datastores.create({"name": "workspace_store", "type": "azure_blob", "account_name": ACCOUNT,
                             "container_name": "workspace", "account_url": azurite.url,
                             "credentials": {"account_key": KEY}}, default=True)
    model = fleet.models.register("iris", models_dir / "iris", "1")
    blob = model.files[0]["sha256"]
    expected = joblib.load(models_dir / "iris" / "model.joblib").predict(IRIS_ROWS).tolist()

    # the server's copy is gone while Ray replicas start: each node reads the store itself
    served = fleet_home / "workspaces" / "default" / "artifacts" / "models" / model.sha256
    assert served.is_dir()
    aside = served.with_name("aside")
    served.rename(aside)
    try:
        fleet.online_endpoints.create("ray-ep", compute="raydev")
        dep = fleet.online_deployments.create("blue", "ray-ep", "iris:1", instance_count=2)
        assert dep["provisioning_state"] == "Succeeded"
        assert len({r["node_id"] for r in dep["replicas"]}) == 2      # one on each node
    finally:
        aside.rename(served)
    for cache in two_nodes.values():
        assert (cache / "blobs" / blob).is_file()
        assert (cache / "trees" / "models" / model.sha256 / "iris" / "model.joblib").resolve() == cache / "blobs" / blob
    logs = fleet.online_deployments.get_logs("blue", "ray-ep", lines=200)
    assert logs.count(f"read {model.files[0]['size']} bytes from datastore 'workspace_store'") == 2, logs

    ep = fleet.online_endpoints.get("ray-ep")
    headers = {"authorization": f"Bearer {fleet.online_endpoints.get_keys('ray-ep')['primaryKey']}"}

    def score() -> list:
        r = httpx.post(ep["scoring_uri"], json={"data": IRIS_ROWS}, headers=headers, timeout=30)
        assert r.status_code == 200, r.text
        return r.json()

    assert score() == expected

    # another endpoint's deployment of the same model: its own actors, from the warm caches; its
    # scoring code read from the store as well
    fleet.online_endpoints.create("ray-ep2", compute="raydev")
    code = scoring_code(tmp_path / "onlinescoring", SCORE_PY)
    dep = fleet.online_deployments.create("green", "ray-ep2", "iris:1", code_configuration=code)
    assert dep["provisioning_state"] == "Succeeded"
    assert "nothing read from datastore" in fleet.online_deployments.get_logs("green", "ray-ep2", lines=100)
    assert any((cache / "trees" / "code").is_dir() for cache in two_nodes.values())
    ep2 = fleet.online_endpoints.get("ray-ep2")
    key2 = fleet.online_endpoints.get_keys("ray-ep2")["primaryKey"]
    r = httpx.post(ep2["scoring_uri"], json={"data": IRIS_ROWS}, headers={"authorization": f"Bearer {key2}"},
                   timeout=30)
    assert r.status_code == 200 and r.json() == {"scored_by": "score.py", "predictions": expected}, r.text
    fleet.online_endpoints.delete("ray-ep2")
    assert score() == expected

    # the store stops: serving goes on, and a replica starting on a node that holds the model reads nothing remote
    azurite.stop()
    assert score() == expected
    dep = fleet.online_deployments.update("blue", "ray-ep", instance_count=3)
    assert dep["provisioning_state"] == "Succeeded" and len(dep["replicas"]) == 3
    logs = fleet.online_deployments.get_logs("blue", "ray-ep", lines=300)
    assert "in the node's cache, nothing read from datastore 'workspace_store'" in logs, logs
    assert all(score() == expected for _ in range(10))
