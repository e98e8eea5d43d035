"""Autoscaling on real replicas: scale to zero and back with a held request, up under load and
down after it, with no failed request."""

from __future__ import annotations

import httpx
import pytest

from .helpers import Load, scoring_code, wait_until

pytestmark = pytest.mark.slow

SLOW_PY = '''
import json, os, time
def init():
    pass
def run(raw):
    time.sleep(json.loads(raw).get("sleep", 0))
    return {"pid": os.getpid()}
'''


@pytest.fixture
def scaled(fleet, models_dir, tmp_path):
    fleet.models.register("iris", models_dir / "iris", "1")
    return fleet, scoring_code(tmp_path / "code", SLOW_PY)


def _client(fleet, endpoint):
    url = fleet.online_endpoints.get(endpoint)["scoring_uri"]
    key = fleet.online_endpoints.get_keys(endpoint)["primaryKey"]
    return url, key


def test_scale_to_zero_and_back_with_the_first_request_held(scaled):
    fleet, code = scaled
    fleet.online_endpoints.create("zero-ep")
    fleet.online_deployments.create("blue", "zero-ep", "iris:1", code_configuration=code, scale_settings={
        "type": "target_utilization", "min_instances": 0, "max_instances": 1, "idle_timeout": 1})
    idle = wait_until(lambda: (lambda d: d if d["health"] == "Idle" else None)(
        fleet.online_deployments.get("blue", "zero-ep")), timeout=60)
    assert idle["replicas"] == [] and idle["wanted_replicas"] == 0
    url, key = _client(fleet, "zero-ep")
    r = httpx.post(url, json={"sleep": 0}, headers={"authorization": f"Bearer {key}"}, timeout=30)
    assert r.status_code == 200                     # held while a replica started, not a 503
    dep = fleet.online_deployments.get("blue", "zero-ep")
    assert dep["last_cold_start_ms"] is not None and len(dep["replicas"]) == 1


def test_scale_up_under_load_and_down_after_it_with_no_failed_request(scaled):
    fleet, code = scaled
    fleet.online_endpoints.create("auto-ep")
    fleet.online_deployments.create("blue", "auto-ep", "iris:1", code_configuration=code,
                                    request_settings={"max_concurrent_requests_per_instance": 1,
                                                      "request_timeout_ms": 30000},
                                    scale_settings={"type": "target_utilization", "min_instances": 1,
                                                    "max_instances": 3, "target_utilization_percentage": 50})
    url, key = _client(fleet, "auto-ep")
    with Load(url, key, b'{"sleep": 0.05}', threads=4) as load:
        wait_until(lambda: len(fleet.online_deployments.get("blue", "auto-ep")["replicas"]) == 3, timeout=60)
        served = load.result.ok
        wait_until(lambda: load.result.ok > served)
    wait_until(lambda: len(fleet.online_deployments.get("blue", "auto-ep")["replicas"]) == 1, timeout=60)
    assert load.result.failed == []
