"""Collected data in the workspace's default datastore, end to end: a real server, Azurite on
127.0.0.1, a deployment collecting by the minute. A stopping server's writer puts its files in the
container under Azure's layout, windows open or not (so the test stops the server rather than
wait for a minute to end); with the store stopped every request is still answered, the failed
uploads are counted and the files arrive once it is back; a monitor and `fleet data` read the
window by its azureml:// path, from the store once the workspace's copy is gone; a monitor of
the deployment's own collection reads the windows of its data window the folder lacks from the
store."""

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


def _metric(api: str, name: str) -> float:
    text = httpx.get(f"{api}/metrics", timeout=30).text
    return sum(s.value for fam in text_string_to_metric_families(text) for s in fam.samples
               if s.name == name and s.labels.get("deployment") == DEPLOYMENT)


def _marker(ws, name: str):
    return (ws / name).with_name(f".{name.rsplit('/', 1)[-1]}.uploaded")


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


def test_collected_files_go_to_the_default_datastore_survive_its_outage_and_are_read_back(
        fleet, azurite, models_dir, tmp_path):  # noqa: F811
    store = container(azurite, "workspace")
    run_cli("datastore", "create", "-f", str(blob_yaml(tmp_path / "ws.yml", azurite, "ws_store", "workspace")),
            "--default")
    run_cli("model", "register", "--name", "iris", "--version", "1", "--path", str(models_dir / "iris"))
    run_cli("online-endpoint", "create", "--name", ENDPOINT)
    fleet.online_deployments.create(DEPLOYMENT, ENDPOINT, "iris:1", data_collector={
        "collections": {"model_inputs": {"enabled": True}}, "rolling_rate": "minute"})
    ws = fleet.workspace.path
    key = fleet.online_endpoints.get_keys(ENDPOINT)["primaryKey"]
    sent = 0

    def stored() -> set[str]:
        return {b.name for b in store.list_blobs(name_starts_with=PREFIX)}

    with httpx.Client(headers={"authorization": f"Bearer {key}"}, timeout=30) as client:
        def start() -> str:
            """Start the server again; its API's URL once the deployment serves again."""
            api = fleet.server.start()[0]["url"]
            wait_until(lambda: scored(refused_ok=True), timeout=60)
            return api

        def scored(refused_ok: bool = False) -> bool:
            """One request answered 200 (and its rows counted as sent); `refused_ok` while starting."""
            nonlocal sent
            r = client.post(fleet.online_endpoints.get(ENDPOINT)["scoring_uri"], json={"data": IRIS_ROWS})
            if r.status_code == 200:
                sent += len(IRIS_ROWS)
            elif not refused_ok:
                raise AssertionError(r.text)   # whatever the store does
            return r.status_code == 200

        # a stopped writer's files are in the container, named as in the workspace's folder
        scored()
        wait_until(lambda: _local(ws), timeout=60)
        first = _local(ws)
        fleet.server.stop()   # its writer uploads every file it wrote, window open or not
        assert first <= stored()
        name = sorted(first)[0].split("/")
        assert len(name) == 10 and [len(p) for p in name[4:9]] == [4, 2, 2, 2, 2]   # yyyy/MM/dd/HH/mm/<file>
        assert all(_marker(ws, p).exists() for p in first)
        start()

        # the store stops: requests go on being answered and collected; failed uploads are counted
        azurite.stop()
        wait_until(lambda: scored() and _local(ws) - first, timeout=60)
        fleet.server.stop()   # its writer cannot upload: the files wait on disk
        left = _local(ws) - first
        api = start()   # the next writer tries the files left at once
        wait_until(lambda: scored() and _metric(api, "modelfleet_collection_upload_failures_total") > 0,
                   timeout=60, interval=0.5)
        assert left and not any(_marker(ws, p).exists() for p in left)   # kept on disk, not uploaded

        # back: the files left before arrive (counted), then a stop sends the rest: nothing lost
        azurite.start()
        wait_until(lambda: scored() and left <= stored() and
                   _metric(api, "modelfleet_collection_uploaded_files_total") >= len(left), timeout=120, interval=0.5)
    fleet.server.stop()
    assert _local(ws) <= stored()

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
