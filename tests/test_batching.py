"""Dynamic batching gives the same answers as one request at a time."""

from __future__ import annotations

import json
import random
from concurrent.futures import ThreadPoolExecutor

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.slow  # every test here starts a server and replicas

BATCH_PY = '''
import json, os
calls = []
def init():
    pass
def run(raw):
    return {"sum": sum(json.loads(raw)["data"]), "batch": 1}
def run_batch(raws):
    calls.append(len(raws))
    return [{"sum": sum(json.loads(r)["data"]), "batch": len(raws)} for r in raws]
'''


def _answers(url, key, bodies, threads=16):
    h = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    with httpx.Client(timeout=30, limits=httpx.Limits(max_connections=threads)) as c, ThreadPoolExecutor(threads) as pool:
        return list(pool.map(lambda b: (lambda r: (r.status_code, r.json()))(c.post(url, content=b, headers=h)), bodies))


def test_batched_answers_equal_unbatched(fleet, models_dir):
    fleet.models.register("wine", models_dir / "wine", "1")
    fleet.online_endpoints.create("wine-ep")
    fleet.online_deployments.create("plain", "wine-ep", "wine:1")
    fleet.online_deployments.create("batched", "wine-ep", "wine:1",
                                    batching={"max_batch_size": 32, "max_batch_wait_ms": 5})
    from sklearn.datasets import load_wine
    X, _ = load_wine(return_X_y=True)
    rng = random.Random(7)
    bodies = []
    for _ in range(400):
        rows = [X[rng.randrange(len(X))].tolist() for _ in range(rng.choice([1, 1, 2, 5]))]
        bodies.append(json.dumps({"data": rows}).encode())
    bodies.append(b'{"nothing": 1}')  # a bad body inside a batch fails alone
    ep = fleet.online_endpoints.get("wine-ep")
    key = fleet.online_endpoints.get_keys("wine-ep")["primaryKey"]
    fleet.online_endpoints.update("wine-ep", traffic={"plain": 100})
    plain = _answers(ep["scoring_uri"], key, bodies)
    fleet.online_endpoints.update("wine-ep", traffic={"batched": 100, "plain": 0})
    batched = _answers(ep["scoring_uri"], key, bodies)
    assert [s for s, _ in plain[:-1]] == [200] * 400
    assert plain[:-1] == batched[:-1]
    assert plain[-1][0] == batched[-1][0] == 400


def test_scoring_script_run_batch(fleet, models_dir, tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "score.py").write_text(BATCH_PY)
    fleet.models.register("wine", models_dir / "wine", "1")
    fleet.online_endpoints.create("rb-ep")
    fleet.online_deployments.create("blue", "rb-ep", "wine:1",
                                    code_configuration={"code": str(code), "scoring_script": "score.py"},
                                    batching={"max_batch_size": 16, "max_batch_wait_ms": 20})
    key = fleet.online_endpoints.get_keys("rb-ep")["primaryKey"]
    bodies = [json.dumps({"data": [i, i]}).encode() for i in range(200)]
    out = _answers(fleet.online_endpoints.get("rb-ep")["scoring_uri"], key, bodies)
    assert [a["sum"] for _, a in out] == [2 * i for i in range(200)]
    assert max(a["batch"] for _, a in out) > 1   # requests really were grouped
    # the server counts the batches: every request in one, some batches of more than one
    info = orjson.loads(fleet.workspace.server_file.read_bytes())
    metrics = httpx.get(f"{info['url']}/metrics", timeout=30).text
    samples = {s.name: s.value for fam in text_string_to_metric_families(metrics) for s in fam.samples
               if s.labels.get("endpoint") == "rb-ep" and fam.name == "modelfleet_batch_size"}
    sizes = [a["batch"] for _, a in out]
    assert samples["modelfleet_batch_size_sum"] == 200 and samples["modelfleet_batch_size_count"] < 200
    assert samples["modelfleet_batch_size_count"] >= 200 / max(sizes)
