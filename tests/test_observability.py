"""Metrics, the access log, live figures and /docs against a real server and replicas."""

from __future__ import annotations

import json
import os
import signal
from collections import Counter

import httpx
import orjson
import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from modelfleet.cli.main import cli

from .conftest import IRIS_ROWS
from .helpers import wait_until

pytestmark = pytest.mark.slow  # every test here starts a server and replicas


def _info(fleet) -> dict:
    return orjson.loads(fleet.workspace.server_file.read_bytes())


def _scrape(fleet, token: str | None = None) -> dict[str, list]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    r = httpx.get(f"{_info(fleet)['url']}/metrics", headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    return {fam.name: fam.samples for fam in text_string_to_metric_families(r.text)}


def _values(samples, name: str, **match) -> dict[tuple, float]:
    """{label values (as sorted items, minus the matched ones): value} of samples named `name`."""
    return {tuple(sorted((k, v) for k, v in s.labels.items() if k not in match)): s.value
            for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in match.items())}


@pytest.fixture
def iris_ep(fleet, models_dir):
    fleet.models.register("iris", models_dir / "iris", "1")
    fleet.online_endpoints.create("obs-ep")
    fleet.online_deployments.create("blue", "obs-ep", "iris:1")
    key = fleet.online_endpoints.get_keys("obs-ep")["primaryKey"]
    return fleet, fleet.online_endpoints.get("obs-ep")["scoring_uri"], key


def test_counters_the_access_log_and_live_figures_match_the_requests_sent(iris_ep):
    fleet, uri, key = iris_ep
    base = uri.rsplit("/endpoints/", 1)[0]
    good = {"authorization": f"Bearer {key}"}
    sent: list[tuple[str, str, int, str]] = []   # (endpoint, deployment, status, request id)

    def post(url, body, headers, endpoint, deployment):
        r = httpx.post(url, json=body, headers=headers, timeout=30)
        sent.append((endpoint, deployment, r.status_code, r.headers["x-request-id"]))
        return r

    for _ in range(7):
        assert post(uri, {"data": IRIS_ROWS}, good, "obs-ep", "blue").status_code == 200
    for _ in range(3):
        assert post(uri, {"data": IRIS_ROWS}, {"authorization": "Bearer wrong"}, "obs-ep", "").status_code == 401
    for _ in range(2):
        assert post(uri, {"data": [[1, 2]]}, good, "obs-ep", "blue").status_code == 424  # the model raised
    assert post(uri, {"data": IRIS_ROWS}, {**good, "azureml-model-deployment": "nope"}, "obs-ep", "").status_code == 404
    assert post(f"{base}/endpoints/no-such-ep/score", {"data": IRIS_ROWS}, good, "", "").status_code == 404
    v2 = {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": sum(IRIS_ROWS, [])}]}
    assert post(f"{base}/v2/models/obs-ep/infer", v2, good, "obs-ep", "blue").status_code == 200
    # not scoring: never counted
    assert httpx.get(f"{base}/v2/models/obs-ep", headers=good, timeout=30).status_code == 200
    assert httpx.get(f"{base}/v2/health/ready", timeout=30).status_code == 200

    expected = Counter((ep, dep, str(status)) for ep, dep, status, _ in sent)
    samples = _scrape(fleet)["modelfleet_requests"]
    counted = {(d["endpoint"], d["deployment"], d["code"]): v
               for labels, v in _values(samples, "modelfleet_requests_total").items() for d in [dict(labels)]}
    assert counted == expected
    metrics = _scrape(fleet)
    durations = _values(metrics["modelfleet_request_duration_seconds"], "modelfleet_request_duration_seconds_count")
    assert sum(durations.values()) == len(sent)
    model = _values(metrics["modelfleet_request_model_duration_seconds"],
                    "modelfleet_request_model_duration_seconds_count", endpoint="obs-ep", deployment="blue")
    assert list(model.values()) == [expected[("obs-ep", "blue", "200")] + expected[("obs-ep", "blue", "424")]]
    replicas = _values(metrics["modelfleet_replicas"], "modelfleet_replicas", endpoint="obs-ep", deployment="blue")
    assert replicas == {(("state", "ready"),): 1.0, (("state", "starting"),): 0.0, (("state", "draining"),): 0.0,
                        (("state", "failed"),): 0.0}
    assert list(_values(metrics["modelfleet_replicas_wanted"], "modelfleet_replicas_wanted", endpoint="obs-ep",
                        deployment="blue").values()) == [1.0]
    memory = _values(metrics["modelfleet_replica_memory_bytes"], "modelfleet_replica_memory_bytes")
    assert len(memory) == 1 and list(memory.values())[0] > 0
    assert "modelfleet_requests_in_flight" in metrics and "process_cpu_seconds" in metrics

    # every request of the test is in the access log, once, with its status
    log_path = fleet.workspace.logs_dir / "access.log"

    def logged():
        lines = log_path.read_text().splitlines() if log_path.exists() else []
        return [json.loads(line) for line in lines] if len(lines) >= len(sent) else None
    entries = wait_until(logged)
    assert sorted((e["endpoint"], e["deployment"], e["status"], e["request_id"]) for e in entries) == sorted(sent)
    ok = next(e for e in entries if e["status"] == 200)
    assert ok["replica"].startswith("blue-") and ok["latency_ms"] >= ok["model_ms"] > 0
    assert ok["bytes_in"] > 0 and ok["bytes_out"] > 0 and ok["time"].endswith("Z") and ok["client"] == "127.0.0.1"

    # live figures over the last minute: in show, in the stats route and in `fleet top`
    shown = json.loads(CliRunner().invoke(cli, ["online-endpoint", "show", "-n", "obs-ep", "-o", "json"]).output)
    live = shown["live"]
    in_endpoint = [s for s in sent if s[0] == "obs-ep"]
    assert live["requests"] == len(in_endpoint)
    assert live["errors"] == sum(1 for s in in_endpoint if s[2] >= 400)
    assert live["p50_ms"] > 0 and live["p99_ms"] >= live["p50_ms"] and live["requests_per_second"] > 0
    dep = fleet.online_deployments.get("blue", "obs-ep")["live"]
    assert dep["requests"] == sum(1 for s in sent if s[1] == "blue") and dep["errors_4xx"] == 2
    top = CliRunner().invoke(cli, ["top", "--once"])
    assert top.exit_code == 0 and "obs-ep" in top.output and "blue" in top.output


def test_replica_restarts_and_cold_starts_are_counted(iris_ep):
    fleet, uri, key = iris_ep
    pid = fleet.online_deployments.get("blue", "obs-ep")["replicas"][0]["pid"]
    os.kill(pid, signal.SIGKILL)

    def restarted():
        reps = fleet.online_deployments.get("blue", "obs-ep")["replicas"]
        return reps and reps[0]["pid"] != pid and reps[0]["state"] == "ready"
    wait_until(restarted)
    metrics = _scrape(fleet)
    restarts = _values(metrics["modelfleet_replica_restarts"], "modelfleet_replica_restarts_total",
                       endpoint="obs-ep", deployment="blue")
    assert list(restarts.values()) == [1.0]
    cold = _values(metrics["modelfleet_replica_cold_start_duration_seconds"],
                   "modelfleet_replica_cold_start_duration_seconds_count", endpoint="obs-ep", deployment="blue")
    assert list(cold.values()) == [2.0]
    loads = _values(metrics["modelfleet_model_load_duration_seconds"],
                    "modelfleet_model_load_duration_seconds_count", endpoint="obs-ep", deployment="blue")
    assert list(loads.values()) == [2.0]
    events = httpx.get(f"{_info(fleet)['url']}/api/events", timeout=30,
                       headers={"authorization": f"Bearer {_info(fleet)['token']}"}).json()
    assert any("ready -> failed" in e["message"] for e in events)


def test_metrics_need_the_admin_token_when_configured(fleet):
    fleet.server.configure(metrics_auth="token")
    fleet.server.start()
    url, token = _info(fleet)["url"], _info(fleet)["token"]
    for auth in (None, "Bearer wrong", token):
        r = httpx.get(f"{url}/metrics", headers={"authorization": auth} if auth else {}, timeout=30)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    assert "modelfleet_build_info" in _scrape(fleet, token)


def test_docs_cover_the_gateway_and_work_offline(fleet):
    fleet.server.start()
    url = _info(fleet)["url"]
    doc = httpx.get(f"{url}/openapi.json", timeout=30).json()
    assert set(doc["components"]["securitySchemes"]) == {"token", "endpointKey"}
    score = doc["paths"]["/endpoints/{endpoint}/score"]["post"]
    assert {"endpointKey": []} in score["security"] and "424" in score["responses"]
    for path in ("/v2/models/{model}/infer", "/v2/models/{model}/versions/{version}/infer"):
        assert doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]["required"] == ["inputs"]
    assert doc["paths"]["/api/endpoints"]["get"]["security"] == [{"token": []}]
    assert doc["paths"]["/api/endpoints/{name}/keys"]["get"]["x-permission"]["action"] == \
        "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/listKeys/action"
    html = httpx.get(f"{url}/docs", timeout=30).text
    assets = [part.split('"')[0] for part in html.split('src="')[1:] + html.split('href="')[1:]]
    assert assets and all(a.startswith("/") for a in assets)  # nothing from another host
    for asset in assets:
        assert httpx.get(f"{url}{asset}", timeout=30).status_code == 200
