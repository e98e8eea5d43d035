"""`api_fleet.data` and `api_fleet.schedules` against the real control API in process: data files
uploaded and checked by the server as well as the client, schedules kept, switched, run and
deleted by the server, and each refusal one line that changes nothing."""

from __future__ import annotations

import numpy as np
import pytest

from modelfleet.domain.errors import InvalidInput, NotFound
from modelfleet.files.digests import content_digest
from modelfleet.schema.monitoring import MonitorScheduleSpec
from modelfleet.schema.validation import validate

from ...helpers import write


def _csv(path, shift: float):
    values = np.random.default_rng(0).normal(shift, 1.0, 400)
    return write(path, "a,b\n" + "".join(f"{v:.5f},{i % 3}\n" for i, v in enumerate(values)))


def _monitor(production: str = "azureml:prod:1") -> MonitorScheduleSpec:
    return validate(MonitorScheduleSpec, {
        "name": "m1", "trigger": {"type": "recurrence", "frequency": "day", "interval": 1},
        "create_monitor": {
            "monitoring_target": {"endpoint_deployment_id": "azureml:ep:blue"},
            "monitoring_signals": {"drift": {
                "type": "data_drift", "features": ["a"],
                "reference_data": {"input_data": {"path": "azureml:ref:1"}},
                "production_data": {"input_data": {"path": production}},
                "metric_thresholds": {"numerical": {"jensen_shannon_distance": 0.1}}}}}})


def test_data_files_are_uploaded_once_and_read_back_by_the_server(api_fleet, inprocess, tmp_path):
    src = _csv(tmp_path / "ref.csv", 0.0)
    sha, files = content_digest(src)
    made = api_fleet.data.create("ref", src, type="uri_file")
    assert (made.version, made.sha256, made.files, made.path) == ("1", sha, files, "ref.csv")
    assert (inprocess.ws.artifacts / "data" / sha / "ref.csv").is_file()
    folder = tmp_path / "folder"
    _csv(folder / "part.csv", 0.0)
    assert api_fleet.data.create("ref", folder).version == "2"
    assert [d.version for d in api_fleet.data.list("ref")] == ["1", "2"]
    assert api_fleet.data.get("ref").version == "2" and api_fleet.data.resolve("azureml:ref:1").type == "uri_file"
    assert len(api_fleet.data.read("ref@latest")["a"]) == 400
    collected = api_fleet.data.create(
        "inputs", "azureml://datastores/workspaceblobstore/paths/modelDataCollector/ep/blue/model_inputs")
    assert collected.sha256 is None and api_fleet.data.read("inputs:1") == {}
    with pytest.raises(NotFound, match="data asset nope not found"):
        api_fleet.data.get("nope")
    with pytest.raises(InvalidInput, match="no labels"):
        api_fleet.data.resolve("ref@champion")


def test_the_server_checks_what_it_registers_whatever_the_client_sent(api_fleet, tmp_path):
    folder = tmp_path / "folder"
    _csv(folder / "part.csv", 0.0)
    sha, files = api_fleet.data.create("ok", folder).sha256, api_fleet.data.get("ok").files
    cases = [
        ({"type": "uri_file", "path": "folder", "sha256": sha, "files": files}, "a uri_file is one .csv or .parquet file"),
        ({"type": "mltable", "path": "folder", "sha256": sha, "files": files}, "holds an MLTable file"),
        ({"type": "uri_folder", "path": "folder", "sha256": "0" * 64, "files": files}, "upload it first"),
        ({"type": "uri_folder", "path": "folder", "sha256": sha, "files": files[:0]}, "does not describe snapshot"),
        ({"type": "uri_folder", "path": "./local", "files": []}, "upload local files"),
        ({"type": "uri_folder", "path": "folder", "sha256": "xyz", "files": files}, "sha256"),
        ({"type": "table", "path": "folder", "sha256": sha, "files": files}, "type"),
    ]
    for body, message in cases:
        with pytest.raises(InvalidInput if "upload it first" not in message else NotFound, match=message) as e:
            api_fleet.request("POST", "/api/data/bad/versions", json=body)
        assert "\n" not in e.value.message
    assert [d.name for d in api_fleet.data.list()] == ["ok"]


def test_schedules_are_kept_switched_run_and_deleted_by_the_server(api_fleet, tmp_path):
    with pytest.raises(NotFound, match="data asset prod:1 not found"):
        api_fleet.schedules.create_or_update(_monitor())
    api_fleet.data.create("ref", _csv(tmp_path / "ref.csv", 0.0), type="uri_file")
    api_fleet.data.create("prod", _csv(tmp_path / "prod.csv", 0.0), type="uri_file", version="1")
    api_fleet.data.create("prod", _csv(tmp_path / "shifted.csv", 2.0), type="uri_file", version="2")
    assert api_fleet.schedules.list() == []
    made = api_fleet.schedules.create_or_update(_monitor())
    assert made.enabled and made.next_run_at
    assert api_fleet.schedules.run("m1")["status"] == "passed"
    api_fleet.schedules.create_or_update(_monitor("azureml:prod:2"))   # replaced in place
    run = api_fleet.schedules.run("m1")
    assert run["status"] == "breached" and [r["feature"] for r in run["results"] if r["passed"] is False] == ["a"]
    shown = api_fleet.schedules.get("m1")
    assert shown.latest_run["id"] == run["id"] and [r["status"] for r in api_fleet.schedules.runs("m1")] == [
        "passed", "breached"]
    off = api_fleet.schedules.disable("m1")
    assert not off.enabled and off.next_run_at is None
    assert api_fleet.schedules.enable("m1").next_run_at
    api_fleet.schedules.delete("m1")
    for call in (api_fleet.schedules.get, api_fleet.schedules.enable, api_fleet.schedules.run,
                 api_fleet.schedules.runs, api_fleet.schedules.delete):
        with pytest.raises(NotFound, match="schedule 'm1' not found"):
            call("m1")


def test_a_bad_schedule_document_is_refused_naming_its_field(api_fleet, tmp_path):
    api_fleet.data.create("ref", _csv(tmp_path / "ref.csv", 0.0), type="uri_file")
    doc = _monitor("azureml:ref:1").data()
    doc["create_monitor"]["monitoring_signals"]["drift"]["metric_thresholds"] = {"numerical": {"jensen_shannon_distance": -1}}
    with pytest.raises(InvalidInput, match="jensen_shannon_distance.*>= 0") as e:
        api_fleet.request("PUT", "/api/schedules/m1", json=doc)
    assert "schedule m1" in e.value.message
    assert api_fleet.schedules.list() == []
