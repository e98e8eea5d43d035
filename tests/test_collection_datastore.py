"""Collected data in the workspace's default datastore, end to end: a real server, Azurite on
127.0.0.1, a deployment collecting by the minute. Each closed window's files land in the container
under Azure's layout; with the store stopped every request is still answered, the failed uploads
are counted and the files arrive once it is back; a monitor and `fleet data` read the window by
its azureml:// path, from the store once the workspace's copy is gone; a monitor of the
deployment's own collection reads the windows of its data window the folder lacks from the store."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from modelfleet.collection.sink import write_parquet

from .azurite import azurite  # noqa: F401  (a fixture)
from .conftest import IRIS_ROWS
from .helpers import run_cli, wait_until, write
from .test_datastore_serving import blob_yaml, container

pytestmark = pytest.mark.slow

ENDPOINT, DEPLOYMENT = "collect-ep", "blue"
PREFIX = f"modelDataCollector/{ENDPOINT}/{DEPLOYMENT}/model_inputs/"
WINDOW_S = 130   # a minute window closes, then its files go up (the uploader's grace and pace)


def _metric(api: str, name: str) -> float:
    text = httpx.get(f"{api}/metrics", timeout=30).text
    return sum(s.value for fam in text_string_to_metric_families(text) for s in fam.samples
               if s.name == name and s.labels.get("deployment") == DEPLOYMENT)


def _local(ws) -> set[str]:
    base = ws / "modelDataCollector"
    return {f"modelDataCollector/{p.relative_to(base).as_posix()}" for p in base.rglob("*.parquet")
            if not p.name.startswith(".")}


MONITOR = """
$schema: http://azureml/sdk-2-0/Schedule.json
name: stored-monitor
trigger: {type: cron, expression: "15 3 * * *"}
create_monitor:
  monitoring_target: {ml_task: classification, endpoint_deployment_id: azureml:collect-ep:blue}
  monitoring_signals:
    quality:
      type: data_quality
      reference_data:
        input_data: {path: azureml:iris-reference:1, type: uri_file}
      production_data:
        input_data: {path: "azureml://datastores/ws_store/paths/modelDataCollector/collect-ep/blue/model_inputs",
                     type: uri_folder}
        data_window: {lookback_window_size: P1D, lookback_window_offset: P0D}
      metric_thresholds:
        numerical: {null_value_rate: 0.01}
"""


def test_collected_windows_go_to_the_default_datastore_survive_its_outage_and_are_read_back(
        fleet, azurite, models_dir, tmp_path):  # noqa: F811
    store = container(azurite, "workspace")
    run_cli("datastore", "create", "-f", str(blob_yaml(tmp_path / "ws.yml", azurite, "ws_store", "workspace")),
            "--default")
    run_cli("model", "register", "--name", "iris", "--version", "1", "--path", str(models_dir / "iris"))
    run_cli("online-endpoint", "create", "--name", ENDPOINT)
    fleet.online_deployments.create(DEPLOYMENT, ENDPOINT, "iris:1", data_collector={
        "collections": {"model_inputs": {"enabled": True}}, "rolling_rate": "minute"})
    ws = fleet.workspace.path
    api = json.loads(fleet.workspace.server_file.read_text())["url"]
    url = fleet.online_endpoints.get(ENDPOINT)["scoring_uri"]
    key = fleet.online_endpoints.get_keys(ENDPOINT)["primaryKey"]
    sent = 0

    with httpx.Client(headers={"authorization": f"Bearer {key}"}, timeout=30) as client:
        def score() -> None:
            nonlocal sent
            r = client.post(url, json={"data": IRIS_ROWS})
            assert r.status_code == 200, r.text   # whatever the store does
            sent += len(IRIS_ROWS)

        # a closed window's files are in the container, named as in the workspace's folder
        score()
        wait_until(lambda: _local(ws), timeout=60)
        first = _local(ws)
        wait_until(lambda: first <= {b.name for b in store.list_blobs(name_starts_with=PREFIX)}, timeout=WINDOW_S)
        name = sorted(first)[0].split("/")
        assert len(name) == 10 and [len(p) for p in name[4:9]] == [4, 2, 2, 2, 2]   # yyyy/MM/dd/HH/mm/<file>
        assert (ws / "/".join(name[:-1]) / f".{name[-1]}.uploaded").exists()

        # the store stops: requests go on being answered and collected; failed uploads are counted
        azurite.stop()
        wait_until(lambda: score() or _metric(api, "modelfleet_collection_upload_failures_total") > 0,
                   timeout=WINDOW_S, interval=0.5)
    waiting = _local(ws) - first
    assert waiting and sum(1 for p in ws.rglob(".*.uploaded")) == len(first)   # kept on disk, not uploaded

    # back: every file written meanwhile arrives, nothing lost
    azurite.start()
    wait_until(lambda: _local(ws) <= {b.name for b in store.list_blobs(name_starts_with=PREFIX)},
               timeout=WINDOW_S + 60, interval=0.5)
    assert _metric(api, "modelfleet_collection_uploaded_files_total") >= len(first)

    # read back by the azureml:// path, from the store alone once the workspace's copy is gone
    reference = tmp_path / "reference.csv"
    reference.write_text("0,1,2,3\n" + "\n".join(",".join(map(str, r)) for r in IRIS_ROWS * 20) + "\n")
    run_cli("data", "create", "--name", "iris-reference", "--version", "1", "--type", "uri_file",
            "--path", str(reference))
    run_cli("data", "create", "--name", "blue-inputs", "--version", "1", "--type", "uri_folder", "--path",
            f"azureml://datastores/ws_store/paths/{PREFIX.rstrip('/')}")
    shutil.rmtree(ws / "modelDataCollector")
    columns = fleet.data.read("blue-inputs:1")
    assert len(columns["correlationid"]) == sent and set(columns) >= {"0", "1", "2", "3", "time"}
    run_cli("schedule", "create", "-f", str(write(tmp_path / "monitor.yml", MONITOR)))
    run = json.loads(run_cli("schedule", "run", "--name", "stored-monitor", "-o", "json").output)["latest_run"]
    assert run["status"] == "passed", run
    assert {r["feature"] for r in run["results"]} == {"0", "1", "2", "3"}
    assert all(r["rows"] == sent for r in run["results"])


# the same monitor of the deployment's own collection (no input_data)
OWN_MONITOR = re.sub(r' +input_data: \{path: "azureml://[^}]*\}\n', "", MONITOR).replace("stored-monitor", "own-monitor")


def _window(t: dt.datetime, rows: list[list], tag: str, nulls: bool = False) -> tuple[str, list[dict]]:
    """A collected hour window's file (its path under the workspace) and its rows."""
    folder = PREFIX + t.strftime("%Y/%m/%d/%H")
    return folder, [{"correlationid": f"{tag}-{i}", "time": t.timestamp() + i,
                     **{str(k): (None if nulls else v) for k, v in enumerate(row)}} for i, row in enumerate(rows)]


def test_a_monitor_of_a_deployment_reads_the_windows_its_folder_lacks_from_the_default_datastore(
        fleet, azurite, tmp_path):  # noqa: F811
    """No input_data: the deployment's own collection, from the workspace's folder and, for the
    windows of the data window the folder lacks, from the blob container; windows outside the
    data window (nulls, which would breach) and files the folder holds are not read from it."""
    store = container(azurite, "workspace")
    run_cli("datastore", "create", "-f", str(blob_yaml(tmp_path / "ws.yml", azurite, "ws_store", "workspace")),
            "--default")
    reference = tmp_path / "reference.csv"
    reference.write_text("0,1,2,3\n" + "\n".join(",".join(map(str, r)) for r in IRIS_ROWS * 20) + "\n")
    run_cli("data", "create", "--name", "iris-reference", "--version", "1", "--type", "uri_file",
            "--path", str(reference))
    ws = fleet.workspace.path
    now = dt.datetime.now(dt.timezone.utc)
    uploaded = {"stored": _window(now - dt.timedelta(hours=5), IRIS_ROWS * 3, "stored"),          # only in the store
                "both": _window(now - dt.timedelta(hours=2), IRIS_ROWS * 2, "both"),              # in both
                "old": _window(now - dt.timedelta(days=3), IRIS_ROWS * 4, "old", nulls=True)}    # outside the window
    for name, (folder, rows) in uploaded.items():
        path = write_parquet(tmp_path / "made" / folder, rows, name)
        store.upload_blob(f"{folder}/{path.name}", path.read_bytes())
        if name == "both":
            (ws / folder).mkdir(parents=True)
            shutil.copy(path, ws / folder / path.name)
    local_folder, local_rows = _window(now - dt.timedelta(hours=1), IRIS_ROWS, "local")             # only in the folder
    write_parquet(ws / local_folder, local_rows, "local")

    run_cli("schedule", "create", "-f", str(write(tmp_path / "monitor.yml", OWN_MONITOR)))
    run = json.loads(run_cli("schedule", "run", "--name", "own-monitor", "-o", "json").output)["latest_run"]
    assert run["status"] == "passed", run
    assert {r["feature"] for r in run["results"]} == {"0", "1", "2", "3"}
    assert all(r["rows"] == len(IRIS_ROWS) * (3 + 2 + 1) for r in run["results"])   # each row once, none of "old"
    assert not list((ws / "modelDataCollector").rglob("*stored*"))   # read from a temporary copy, not kept
