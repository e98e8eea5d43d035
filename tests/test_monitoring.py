"""Model monitoring end to end: a deployment collects what it receives and answers, a monitor
compares it with reference data, flags the features that drifted and calls a webhook once; a
score.py using azureml-ai-monitoring's Collector, as published, writes what payload collection writes."""

from __future__ import annotations

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import joblib
import numpy as np
import pyarrow.parquet as pq
import pytest

from prometheus_client.parser import text_string_to_metric_families

from .conftest import IRIS_ROWS
from .helpers import Load, on_a_small_disk, run_cli, wait_until, write
from .test_faults import _fill
from .test_dashboard import browser  # noqa: F401 (the fixture: headless Chromium)

pytestmark = pytest.mark.slow   # every test here starts a server and replicas

FEATURES = ["f0", "f1", "f2", "f3"]
SHIFTED = {"f1", "f3"}
BATCH = 50


def _train(folder: Path, rows: int = 2000):
    """A scikit-learn model fitted on named columns (so it knows its feature names), and its
    training data, which is the reference."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(rng.normal(0.0, 1.0, (rows, len(FEATURES))), columns=FEATURES)
    model = LogisticRegression().fit(frame, (frame["f0"] + frame["f1"] > 0).astype(int))
    folder.mkdir(parents=True)
    joblib.dump(model, folder / "model.joblib")
    return frame


def _rows(n: int, seed: int, shifted=()) -> np.ndarray:
    data = np.random.default_rng(seed).normal(0.0, 1.0, (n, len(FEATURES)))
    for i, name in enumerate(FEATURES):
        if name in shifted:
            data[:, i] += 2.5
    return data


class Webhook:
    """An alert receiver on 127.0.0.1: keeps every JSON document posted to it."""

    def __init__(self):
        self.calls: list[dict] = []
        calls = self.calls

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                calls.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook():
    hook = Webhook()
    yield hook
    hook.close()


def _collected(ws: Path, endpoint: str, deployment: str, collection: str):
    """Every row collected so far, as a pyarrow table (None before the first file)."""
    import pyarrow as pa
    files = sorted((ws / "modelDataCollector" / endpoint / deployment / collection).rglob("*.parquet"))
    tables = [pq.read_table(f) for f in files]
    return pa.concat_tables(tables, promote_options="permissive") if tables else None


def _count(ws, endpoint, deployment, collection) -> int:
    table = _collected(ws, endpoint, deployment, collection)
    return 0 if table is None else table.num_rows


def _send(client, url, data: np.ndarray, deployment: str | None = None) -> list[str]:
    """Score `data` in batches; the request ids."""
    headers = {"azureml-model-deployment": deployment} if deployment else {}
    ids = []
    for start in range(0, len(data), BATCH):
        r = client.post(url, json={"data": data[start:start + BATCH].tolist()}, headers=headers)
        assert r.status_code == 200, r.text
        ids.append(r.headers["x-request-id"])
    return ids


def _deployment_yaml(tmp_path: Path, name: str, code: Path | None = None) -> Path:
    """Azure's deployment YAML with a data_collector block (and Azure-only fields, as written there)."""
    lines = [f"name: {name}", "endpoint_name: drift-ep", "model: azureml:drifty:1",
             "instance_type: Standard_DS3_v2", "instance_count: 1"]
    if code is not None:
        lines += ["code_configuration:", f"  code: {code}", "  scoring_script: score.py"]
    lines += ["data_collector:", "  collections:", "    model_inputs:", "      enabled: 'True'",
              "    model_outputs:", "      enabled: 'True'", "  rolling_rate: hour"]
    return write(tmp_path / f"{name}.yml", "\n".join(lines) + "\n")


MONITOR = """
$schema: http://azureml/sdk-2-0/Schedule.json
name: drift-monitor
trigger:
  type: cron
  expression: "15 3 * * *"
create_monitor:
  compute:
    instance_type: standard_e4s_v3
  monitoring_target:
    ml_task: classification
    endpoint_deployment_id: azureml:drift-ep:blue
  monitoring_signals:
    input-drift:
      type: data_drift
      reference_data:
        input_data:
          path: azureml:drift-reference:1
          type: uri_file
        data_context: training
      production_data:
        data_context: model_inputs
        data_window:
          lookback_window_size: P1D
          lookback_window_offset: P0D
      features: all_features
      metric_thresholds:
        numerical:
          jensen_shannon_distance: 0.15
  alert_notification:
    emails:
      - ops@example.com
    webhooks:
      - {url}
"""


def test_a_monitor_passes_on_reference_traffic_and_flags_exactly_the_shifted_features(
        fleet, tmp_path, webhook, browser):  # noqa: F811
    frame = _train(tmp_path / "model")
    frame.to_csv(tmp_path / "reference.csv", index=False)
    run_cli("model", "register", "--name", "drifty", "--version", "1", "--path", str(tmp_path / "model"))
    run_cli("data", "create", "--name", "drift-reference", "--version", "1", "--type", "uri_file",
            "--path", str(tmp_path / "reference.csv"))
    run_cli("online-endpoint", "create", "--name", "drift-ep")
    run_cli("online-deployment", "create", "-f", str(_deployment_yaml(tmp_path, "blue")), "--all-traffic")
    monitor = write(tmp_path / "monitor.yml", MONITOR.replace("{url}", webhook.url))
    created = run_cli("schedule", "create", "-f", str(monitor), "-o", "json")
    assert "emails" in created.stderr or "emails" in created.output   # kept, said not to send mail
    ws = fleet.workspace.path
    url = fleet.online_endpoints.get("drift-ep")["scoring_uri"]
    key = fleet.online_endpoints.get_keys("drift-ep")["primaryKey"]

    with httpx.Client(headers={"authorization": f"Bearer {key}"}, timeout=30) as client:
        # A window of traffic from the reference distribution: every feature passes.
        ids = _send(client, url, _rows(1500, seed=1))
        wait_until(lambda: _count(ws, "drift-ep", "blue", "model_inputs") == 1500, timeout=60)
        inputs = _collected(ws, "drift-ep", "blue", "model_inputs")
        assert set(inputs.column_names) == {"correlationid", "time", *FEATURES}   # named as the model's features
        assert set(inputs.column("correlationid").to_pylist()) == set(ids)      # the request ids
        wait_until(lambda: _count(ws, "drift-ep", "blue", "model_outputs") == 1500, timeout=60)
        first = json.loads(run_cli("schedule", "run", "--name", "drift-monitor", "-o", "json").output)["latest_run"]
        assert first["status"] == "passed", first
        assert {r["feature"] for r in first["results"]} == set(FEATURES)
        assert all(r["result"] == "pass" for r in first["results"])
        assert webhook.calls == []

        # Then traffic with two features shifted: exactly those two fail, and one alert goes out.
        _send(client, url, _rows(1500, seed=2, shifted=SHIFTED))
        wait_until(lambda: _count(ws, "drift-ep", "blue", "model_inputs") == 3000, timeout=60)
        second = json.loads(run_cli("schedule", "run", "--name", "drift-monitor", "-o", "json").output)["latest_run"]
    assert second["status"] == "breached"
    assert {r["feature"] for r in second["results"] if r["result"] == "fail"} == SHIFTED
    wait_until(lambda: len(webhook.calls) >= 1)
    assert len(webhook.calls) == 1
    alert = webhook.calls[0]
    assert alert["schedule"] == "drift-monitor" and {b["feature"] for b in alert["breaches"]} == SHIFTED
    breach_lines = [line for line in (ws / "logs" / "server.log").read_text().splitlines()
                    if "monitor drift-monitor run" in line and "breached" in line]
    assert len(breach_lines) == 1 and "f1" in breach_lines[0] and "f3" in breach_lines[0]
    shown = run_cli("schedule", "show", "--name", "drift-monitor", "-o", "table").output
    for feature in FEATURES:
        assert feature in shown
    assert shown.count("fail") == len(SHIFTED)

    # /metrics: the latest value and pass/fail of each feature, and the rows collected
    info = json.loads(fleet.workspace.server_file.read_text())
    samples = [s for fam in text_string_to_metric_families(httpx.get(f"{info['url']}/metrics").text)
               for s in fam.samples]
    breached = {s.labels["feature"]: s.value for s in samples if s.name == "modelfleet_monitor_breached"}
    assert breached == {f: 1.0 if f in SHIFTED else 0.0 for f in FEATURES}
    rows = {s.labels["collection"]: s.value for s in samples if s.name == "modelfleet_collected_rows_total"}
    assert rows == {"model_inputs": 3000, "model_outputs": 3000}

    # the dashboard draws each feature's metric over the two runs, and the latest pass or fail
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{info['url']}/dashboard#token={info['token']}")
    chart = page.wait_for_selector("canvas[data-testid=monitor-chart][data-points='2']")
    assert set(chart.get_attribute("data-features").split(",")) == set(FEATURES)
    assert float(chart.get_attribute("data-max")) > 0.15     # the shifted features' second point
    results = page.inner_text("[data-testid=monitor-results]")
    assert results.count("fail") == len(SHIFTED) and results.count("pass") == len(FEATURES) - len(SHIFTED)
    page.close()


COLLECTOR_SCORE_PY = """
import glob
import json
import os

import joblib
import pandas as pd
from azureml.ai.monitoring import Collector

FEATURES = ["f0", "f1", "f2", "f3"]


def init():
    global model, inputs_collector, outputs_collector
    model = joblib.load(glob.glob(os.path.join(os.environ["AZUREML_MODEL_DIR"], "**", "model.joblib"),
                                  recursive=True)[0])
    inputs_collector = Collector(name="model_inputs")
    outputs_collector = Collector(name="model_outputs")


def run(raw_data):
    input_df = pd.DataFrame(json.loads(raw_data)["data"], columns=FEATURES)
    context = inputs_collector.collect(input_df)
    output_df = pd.DataFrame({"predict": model.predict(input_df)})
    outputs_collector.collect(output_df, context)
    return output_df["predict"].tolist()
"""


def _values_of(table, columns) -> list[float]:
    """The rows, sorted, flattened."""
    return [v for row in sorted(tuple(r[c] for c in columns) for r in table.select(columns).to_pylist()) for v in row]


def test_a_score_py_with_azures_collector_writes_what_payload_collection_writes(fleet, tmp_path):
    _train(tmp_path / "model")
    code = tmp_path / "code"
    write(code / "score.py", COLLECTOR_SCORE_PY)
    run_cli("model", "register", "--name", "drifty", "--version", "1", "--path", str(tmp_path / "model"))
    run_cli("online-endpoint", "create", "--name", "drift-ep")
    run_cli("online-deployment", "create", "-f", str(_deployment_yaml(tmp_path, "blue")), "--all-traffic")
    run_cli("online-deployment", "create", "-f", str(_deployment_yaml(tmp_path, "green", code)))
    ws = fleet.workspace.path
    url = fleet.online_endpoints.get("drift-ep")["scoring_uri"]
    key = fleet.online_endpoints.get_keys("drift-ep")["primaryKey"]
    data = _rows(400, seed=3)
    with httpx.Client(headers={"authorization": f"Bearer {key}"}, timeout=30) as client:
        _send(client, url, data, "blue")      # no code: the gateway collects
        _send(client, url, data, "green")     # score.py: azureml-ai-monitoring posts to the replica
    for collection, columns in (("model_inputs", FEATURES), ("model_outputs", ["predict"])):
        wait_until(lambda: _count(ws, "drift-ep", "blue", collection) == 400, timeout=60)
        wait_until(lambda: _count(ws, "drift-ep", "green", collection) == 400, timeout=60)
        payload = _collected(ws, "drift-ep", "blue", collection)
        custom = _collected(ws, "drift-ep", "green", collection)
        assert set(custom.column_names) == set(payload.column_names) == {"correlationid", "time", *columns}
        # the same rows, to the 10 significant digits of pandas' to_json (what the package sends)
        assert _values_of(custom, columns) == pytest.approx(_values_of(payload, columns), rel=1e-9, abs=1e-10)
    # inputs and outputs of one call share the correlation id the Collector's context carried
    inputs = _collected(ws, "drift-ep", "green", "model_inputs")
    outputs = _collected(ws, "drift-ep", "green", "model_outputs")
    assert set(inputs.column("correlationid").to_pylist()) == set(outputs.column("correlationid").to_pylist())
    assert len(set(inputs.column("correlationid").to_pylist())) == 400 // BATCH


# -- a full disk under the collection -------------------------------------------------------------

_FULL_DISK_DRIVER = '''
import json, os, sys
os.environ["FLEET_HOME"] = sys.argv[1]
from modelfleet import Fleet
f = Fleet()
f.models.register("iris", sys.argv[2], "1")
f.online_endpoints.create("disk-ep")
f.online_deployments.create("blue", "disk-ep", "iris:1", data_collector={
    "collections": {"model_inputs": {"enabled": True}, "model_outputs": {"enabled": True},
                    "request": {"enabled": True}, "response": {"enabled": True}},
    "rolling_rate": "minute"})
print(json.dumps({"url": f.online_endpoints.get("disk-ep")["scoring_uri"], "api": f.server.status()["url"],
                  "key": f.online_endpoints.get_keys("disk-ep")["primaryKey"]}), flush=True)
sys.stdin.readline()                  # the test says when
f.server.stop()
'''


def _metric(api: str, name: str, **labels) -> float:
    text = httpx.get(f"{api}/metrics", timeout=30).text
    return sum(s.value for fam in text_string_to_metric_families(text) for s in fam.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def test_a_full_disk_under_the_collection_drops_samples_and_no_request(tmp_path, models_dir):
    """Filled while every request is collected four ways (helpers.on_a_small_disk: a real 64 MiB
    filesystem), no request fails; the samples dropped are counted, and collection resumes once
    there is room."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    body = json.dumps({"data": IRIS_ROWS}).encode()
    with on_a_small_disk(mnt, _FULL_DISK_DRIVER, str(models_dir / "iris")) as (info, disk):
        rows = lambda: _metric(info["api"], "modelfleet_collected_rows_total", collection="model_inputs")  # noqa: E731
        with Load(info["url"], info["key"], body, threads=2) as load:
            wait_until(lambda: rows() > 0, timeout=30)
            _fill(disk / "filler")
            assert shutil.disk_usage(disk).free < 64 * 1024
            wait_until(lambda: _metric(info["api"], "modelfleet_collection_dropped_total", reason="write_failed") > 0,
                       timeout=30)
            served = load.result.ok
            wait_until(lambda: load.result.ok > served + 200, timeout=60)
            (disk / "filler").unlink()
            written = rows()
            wait_until(lambda: rows() > written, timeout=30)   # room again: collection goes on
        assert load.result.failed == [] and load.result.ok > 0


# -- the writer process: V2 requests, a writer that dies, a server that stops ----------------------

WRITER_MODULES = ("modelfleet.collection.writer", "modelfleet.datastores.collected")


def _writers(server_pid: int) -> list[int]:
    import psutil
    out = []
    for p in psutil.Process(server_pid).children(recursive=True):
        try:
            # the server's writer is collection/writer.py's loop, started as datastores/collected.py
            if any(m in " ".join(p.cmdline()) for m in WRITER_MODULES):
                out.append(p.pid)
        except psutil.Error:
            pass
    return out


def test_v2_requests_are_collected_and_a_writer_that_dies_loses_nothing(fleet, tmp_path):
    import os
    import signal

    import psutil
    _train(tmp_path / "model")
    run_cli("model", "register", "--name", "drifty", "--version", "1", "--path", str(tmp_path / "model"))
    run_cli("online-endpoint", "create", "--name", "drift-ep")
    run_cli("online-deployment", "create", "-f", str(_deployment_yaml(tmp_path, "blue")), "--all-traffic")
    ws = fleet.workspace.path
    ep = fleet.online_endpoints.get("drift-ep")
    key = fleet.online_endpoints.get_keys("drift-ep")["primaryKey"]
    server = fleet.server.status()["pid"]
    v2_url = ep["scoring_uri"].replace("/endpoints/drift-ep/score", "/v2/models/drift-ep/infer")
    data = _rows(40, seed=3)

    def v2(rows) -> str:
        r = client.post(v2_url, json={"inputs": [{"name": "input-0", "shape": [len(rows), 4], "datatype": "FP64",
                                                  "data": rows.reshape(-1).tolist()}]})
        assert r.status_code == 200, r.text
        return r.headers["x-request-id"]

    with httpx.Client(headers={"authorization": f"Bearer {key}"}, timeout=30) as client:
        ids = [v2(data[i:i + 1]) for i in range(10)]
        wait_until(lambda: _writers(server), timeout=60)
        first = _writers(server)[0]
        os.kill(first, signal.SIGKILL)
        ids += [v2(data[i:i + 1]) for i in range(10, 20)]
        ids += _send(client, ep["scoring_uri"], data[20:21])
        wait_until(lambda: _count(ws, "drift-ep", "blue", "model_outputs") == 21, timeout=60)
        wait_until(lambda: _count(ws, "drift-ep", "blue", "model_inputs") == 21, timeout=60)
    inputs = _collected(ws, "drift-ep", "blue", "model_inputs")
    assert sorted(inputs.column("correlationid").to_pylist()) == sorted(ids)   # each once
    assert set(inputs.column_names) == {"correlationid", "time", *FEATURES}   # V2 rows named as the model's
    assert {"predict"} <= set(_collected(ws, "drift-ep", "blue", "model_outputs").column_names)
    assert _writers(server) and first not in _writers(server)               # another writer took over
    writer = psutil.Process(_writers(server)[0])
    fleet.server.stop()
    assert not writer.is_running() or writer.status() == psutil.STATUS_ZOMBIE   # the server ended it
