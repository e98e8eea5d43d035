"""Traffic control on a real server: split, header targeting, mirror, V2 protocol, request limits."""

from __future__ import annotations

import json
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from modelfleet.domain.errors import Conflict, InvalidInput

from .conftest import IRIS_ROWS, endpoints_deleted, fleet_in
from .helpers import scoring_code, wait_until

pytestmark = pytest.mark.slow  # every test here starts a server and replicas

WHO_PY = '''
import json, os, time
def init():
    pass
def run(raw_data):
    data = json.loads(raw_data)
    log = os.environ.get("HIT_LOG")
    if log:
        with open(log, "a") as f:
            f.write(json.dumps(data.get("data")) + "\\n")
    gate = os.environ.get("GATE")
    if gate:  # a slow model: each request takes until the test opens the gate
        deadline = time.monotonic() + 60
        while not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.01)
        with open(log, "a") as f:
            f.write('"done"\\n')
    if os.environ.get("ALWAYS_RAISE") or data.get("raise"):
        raise ValueError("model raised on purpose")
    if data.get("sleep"):
        time.sleep(data["sleep"])
    return {"who": os.environ.get("WHO"), "data": data.get("data")}
'''


@pytest.fixture(scope="module")
def who_workspace(tmp_path_factory, models_dir):
    tmp = tmp_path_factory.mktemp("traffic")
    with fleet_in(tmp / "home") as fleet:
        code = scoring_code(tmp / "code", WHO_PY)
        fleet.models.register("iris", models_dir / "iris", "1")

        def deploy(endpoint, name, **kw):
            env = {"WHO": name, **kw.pop("env", {})}
            return fleet.online_deployments.create(name, endpoint, "iris:1", code_configuration=code,
                                                   environment_variables=env, **kw)
        yield fleet, deploy


@pytest.fixture
def who(who_workspace):
    """The module's workspace (a server start less per test) and `deploy(endpoint, name)`, which
    deploys WHO_PY; each test makes endpoints of its own names, deleted after it."""
    with endpoints_deleted(who_workspace[0]):
        yield who_workspace


def _client(fleet, endpoint):
    ep = fleet.online_endpoints.get(endpoint)
    key = fleet.online_endpoints.get_keys(endpoint)["primaryKey"]
    return ep["scoring_uri"], {"authorization": f"Bearer {key}", "content-type": "application/json"}


def _hits(log) -> list:
    """The `data` of every request a deployment's model received (HIT_LOG), in order."""
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _until_mirrored(url, headers, log, marker: str) -> None:
    """Send requests carrying `marker` until the mirror's model has received one. A replica takes
    its requests in order, so every copy mirrored before has reached the model by then."""
    def sent_and_received():
        httpx.post(url, content=json.dumps({"data": marker}).encode(), headers=headers, timeout=30)
        return marker in _hits(log)
    wait_until(sent_and_received)


def _fire(url, headers, n, body=b'{"data": 1}', threads=8):
    counts = Counter()
    statuses = Counter()
    lock = threading.Lock()

    def worker(k):
        with httpx.Client(timeout=30) as c:
            for _ in range(k):
                r = c.post(url, content=body, headers=headers)
                with lock:
                    statuses[r.status_code] += 1
                    counts[r.headers.get("azureml-model-deployment")] += 1
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, [n // threads] * threads))
    return counts, statuses


def test_weighted_split_header_targeting_and_rules(who):
    fleet, deploy = who
    fleet.online_endpoints.create("split-ep")
    deploy("split-ep", "blue")
    green = deploy("split-ep", "green")
    assert fleet.online_endpoints.get("split-ep")["traffic"] == {"blue": 100}   # new ones take 0%
    url, h = _client(fleet, "split-ep")
    # header targeting reaches a deployment at 0%
    r = httpx.post(url, content=b'{"data": 1}', headers={**h, "azureml-model-deployment": "green"})
    assert r.json()["who"] == "green"
    assert fleet.online_endpoints.invoke("split-ep", {"data": 2}, deployment_name="green")["who"] == "green"
    pids = {d["name"]: [r["pid"] for r in d["replicas"]] for d in fleet.online_deployments.list("split-ep")}
    ep = fleet.online_endpoints.update("split-ep", traffic={"blue": 80, "green": 20})
    assert ep["traffic"] == {"blue": 80, "green": 20}
    counts, statuses = _fire(url, h, 2000)
    assert statuses == {200: 2000}
    share = counts["green"] / 2000
    assert 0.16 <= share <= 0.24, counts   # 20% +- 4 standard deviations
    # changing traffic restarted no replica
    assert {d["name"]: [r["pid"] for r in d["replicas"]] for d in fleet.online_deployments.list("split-ep")} == pids
    for bad, why in [({"blue": 80, "green": 30}, "sum to 0 or 100"), ({"blue": 90, "teal": 10}, "'teal'"),
                     ({"blue": 101, "green": -1}, "0 to 100")]:
        with pytest.raises(InvalidInput, match=why):
            fleet.online_endpoints.update("split-ep", traffic=bad)
    with pytest.raises(InvalidInput, match="already takes live traffic"):
        fleet.online_endpoints.update("split-ep", mirror_traffic={"green": 10})
    with pytest.raises(Conflict, match="move its traffic"):
        fleet.online_deployments.delete("blue", "split-ep")
    assert fleet.online_endpoints.get("split-ep")["traffic"] == {"blue": 80, "green": 20}
    fleet.online_endpoints.update("split-ep", traffic={"blue": 0, "green": 100})
    counts, _ = _fire(url, h, 80)
    assert counts == {"green": 80}
    fleet.online_deployments.delete("blue", "split-ep")
    assert fleet.online_endpoints.get("split-ep")["traffic"] == {"green": 100}
    assert green["provisioning_state"] == "Succeeded"


def test_all_traffic_flag_and_zero_traffic(who):
    fleet, deploy = who
    fleet.online_endpoints.create("all-ep")
    deploy("all-ep", "blue")
    deploy("all-ep", "green", all_traffic=True)
    assert fleet.online_endpoints.get("all-ep")["traffic"] == {"green": 100}
    fleet.online_endpoints.update("all-ep", traffic={"green": 0})
    url, h = _client(fleet, "all-ep")
    r = httpx.post(url, content=b'{"data": 1}', headers=h)
    assert r.status_code == 503 and r.json()["error"]["code"] == "no_traffic"


def test_mirror_copies_a_share_and_never_touches_live_answers(who, tmp_path):
    fleet, deploy = who
    hits = tmp_path / "mirror-hits.log"
    fleet.online_endpoints.create("mir-ep")
    deploy("mir-ep", "blue")
    deploy("mir-ep", "shadow", env={"HIT_LOG": str(hits)})
    with pytest.raises(InvalidInput, match="at most 50"):
        fleet.online_endpoints.update("mir-ep", mirror_traffic={"shadow": 60})
    ep = fleet.online_endpoints.update("mir-ep", mirror_traffic={"shadow": 20})
    assert ep["mirror_traffic"] == {"shadow": 20} and ep["traffic"] == {"blue": 100}
    url, h = _client(fleet, "mir-ep")
    counts, statuses = _fire(url, h, 1600)
    assert statuses == {200: 1600} and counts == {"blue": 1600}
    _until_mirrored(url, h, hits, "after the split")
    mirrored = _hits(hits).count(1)
    assert 0.14 * 1600 <= mirrored <= 0.26 * 1600, mirrored  # ~20% (the mirror drops copies when busy)
    # targeted requests are not mirrored
    _fire(url, {**h, "azureml-model-deployment": "blue"}, 200, body=b'{"data": "targeted"}')
    _until_mirrored(url, h, hits, "after the targeted ones")
    assert "targeted" not in _hits(hits)


def test_slow_or_failing_mirror_changes_nothing_live(who, tmp_path):
    fleet, deploy = who
    gate, slow_hits, broken_hits = tmp_path / "gate", tmp_path / "slow.log", tmp_path / "broken.log"
    fleet.online_endpoints.create("slowmir-ep")
    deploy("slowmir-ep", "blue")
    # a gateway that waited for this mirror would hold a live request past the client's 30 s timeout
    deploy("slowmir-ep", "slow", env={"GATE": str(gate), "HIT_LOG": str(slow_hits)},
           request_settings={"request_timeout_ms": 120_000})
    deploy("slowmir-ep", "broken", env={"ALWAYS_RAISE": "1", "HIT_LOG": str(broken_hits)})
    url, h = _client(fleet, "slowmir-ep")
    try:
        for target, hits in (("slow", slow_hits), ("broken", broken_hits)):
            fleet.online_endpoints.update("slowmir-ep", mirror_traffic={target: 50})
            with httpx.Client(timeout=30) as c:
                for i in range(40):
                    r = c.post(url, content=json.dumps({"data": i}).encode(), headers=h)
                    assert r.status_code == 200 and r.json() == {"who": "blue", "data": i}
            wait_until(lambda: _hits(hits))  # the mirror did get copies
        # every live answer arrived while the slow mirror was still holding its first copy: the
        # gateway never waited for it (the gate opens only below)
        assert "done" not in _hits(slow_hits)
    finally:
        gate.touch()


def test_v2_protocol_with_a_stock_client(fleet, models_dir):
    import tritonclient.http as tc
    fleet.models.register("iris", models_dir / "iris", "1")
    fleet.models.register("iris", models_dir / "iris_v2", "2")
    fleet.online_endpoints.create("iris-v2")
    fleet.online_deployments.create("blue", "iris-v2", "iris:1")
    fleet.online_deployments.create("green", "iris-v2", "iris:2")
    url = fleet.online_endpoints.get("iris-v2")["scoring_uri"].split("/endpoints/")[0].removeprefix("http://")
    key = fleet.online_endpoints.get_keys("iris-v2")["primaryKey"]
    auth = {"Authorization": f"Bearer {key}"}
    client = tc.InferenceServerClient(url=url)
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("iris-v2", headers=auth)
        meta = client.get_model_metadata("iris-v2", headers=auth)
        assert meta["name"] == "iris-v2" and meta["versions"] == ["blue", "green"]
        x = np.array(IRIS_ROWS, dtype=np.float64)
        inp = tc.InferInput("input", list(x.shape), "FP64")
        inp.set_data_from_numpy(x, binary_data=False)
        out = tc.InferRequestedOutput("predict", binary_data=False)
        res = client.infer("iris-v2", [inp], outputs=[out], headers=auth, request_id="r1")
        assert res.as_numpy("predict").tolist() == [0, 2]
        assert res.get_response()["model_version"] == "blue" and res.get_response()["id"] == "r1"
        res = client.infer("iris-v2", [inp], model_version="green", headers=auth)
        assert res.as_numpy("predict").tolist() == [0, 2] and res.get_response()["model_version"] == "green"
        with pytest.raises(tc.InferenceServerException, match="401|unauthorized|key"):
            client.infer("iris-v2", [inp])
    finally:
        client.close()
    base = f"http://{url}"
    # the binary tensor extension: JSON header, then the raw tensor bytes
    header = json.dumps({"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP64",
                                     "parameters": {"binary_data_size": 64}}]}).encode()
    r = httpx.post(f"{base}/v2/models/iris-v2/infer", content=header + x.tobytes(),
                   headers={**auth, "Inference-Header-Content-Length": str(len(header))})
    assert r.status_code == 200 and r.json()["outputs"][0]["data"] == [0, 2]
    assert httpx.get(f"{base}/v2/models/nope/ready").status_code == 404
    r = httpx.post(f"{base}/v2/models/iris-v2/infer", content=b'{"inputs": "nope"}', headers=auth)
    assert r.status_code == 400 and "inputs" in r.json()["error"] and r.json()["request_id"]


def test_request_limits_and_errors_are_json(who):
    fleet, deploy = who
    fleet.online_endpoints.create("lim-ep")
    deploy("lim-ep", "blue", request_settings={"request_timeout_ms": 300, "max_concurrent_requests_per_instance": 1,
                                               "max_queue_size": 2, "max_body_bytes": 2000})
    url, h = _client(fleet, "lim-ep")
    r = httpx.post(url, content=b'{"data": "' + b"x" * 5000 + b'"}', headers=h)
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    r = httpx.post(url, content=json.dumps({"raise": True}).encode(), headers=h)
    assert r.status_code == 424 and "model raised on purpose" in r.json()["error"]["message"]
    assert "Traceback" not in r.text
    r = httpx.post(url, content=json.dumps({"sleep": 1.0}).encode(), headers=h)
    assert r.status_code == 408 and r.json()["error"]["code"] == "timeout" and r.json()["request_id"]
    # the timed-out sleeper frees its slot at once, but its replica gets nothing new until it
    # answers; then requests are served again
    wait_until(lambda: httpx.post(url, content=b'{"data": 7}', headers=h).json() == {"who": "blue", "data": 7})
    fleet.online_deployments.update("blue", "lim-ep", request_settings={"request_timeout_ms": 5000})
    assert httpx.post(url, content=json.dumps({"sleep": 0.5}).encode(), headers=h).status_code == 200
    # one slot, a queue of two: a burst of ten gets 429s, each a JSON error
    with ThreadPoolExecutor(10) as pool:
        rs = list(pool.map(lambda _: httpx.post(url, content=b'{"sleep": 0.2}', headers=h, timeout=30), range(10)))
    codes = Counter(r.status_code for r in rs)
    assert codes[429] >= 5, codes
    assert all(r.json()["error"]["code"] == "too_many_requests" for r in rs if r.status_code == 429)
