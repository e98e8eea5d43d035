"""`fleet schedule create|list|show|enable|disable|delete`: Azure's monitor YAML is checked whole
before anything is written, and its data references must exist. The real CLI and control API in
process (tests/inprocess.py), on SQLite and on PostgreSQL."""

from __future__ import annotations

import json

import pytest

from .helpers import run_cli, write

pytestmark = pytest.mark.databases

MONITOR = """
name: m1
trigger: {type: recurrence, frequency: hour, interval: 6}
create_monitor:
  monitoring_target: {endpoint_deployment_id: "azureml:ep:blue"}
  monitoring_signals:
    drift:
      type: data_drift
      reference_data: {input_data: {path: "azureml:ref:1", type: uri_file}}
"""


def _json(*args):
    return json.loads(run_cli(*args, "-o", "json").output)


def test_a_schedule_is_written_once_valid_and_its_reference_exists(api_cli, tmp_path):
    monitor = write(tmp_path / "monitor.yml", MONITOR)
    out = run_cli("schedule", "create", "-f", str(monitor), code=1).output
    assert out.strip() == "error: data asset ref:1 not found"
    assert _json("schedule", "list") == []
    write(tmp_path / "ref.csv", "a,b\n1,2\n")
    run_cli("data", "create", "--name", "ref", "--version", "1", "--type", "uri_file", "--path", str(tmp_path / "ref.csv"))
    created = _json("schedule", "create", "-f", str(monitor))
    assert created["enabled"] and created["next_run_at"]
    shown = _json("schedule", "show", "--name", "m1")
    assert shown["latest_run"] is None and shown["spec"]["trigger"]["interval"] == 6
    assert "no run yet" in run_cli("schedule", "show", "--name", "m1", "-o", "table").output
    disabled = _json("schedule", "disable", "--name", "m1")
    assert not disabled["enabled"] and disabled["next_run_at"] is None
    assert _json("schedule", "enable", "--name", "m1")["next_run_at"]
    run_cli("schedule", "delete", "--name", "m1", "--yes")
    assert _json("schedule", "list") == []
    assert "not found" in run_cli("schedule", "show", "--name", "m1", code=1).output


def test_a_bad_monitor_is_one_line_naming_the_file_and_field(api_cli, tmp_path):
    bad = write(tmp_path / "bad.yml", MONITOR.replace("type: data_drift", "type: data_drift\n      metric_thresholds:"
                                                      "\n        numerical: {jensen_shannon_distance: -1}"))
    out = run_cli("schedule", "create", "-f", str(bad), code=2).output
    assert out.count("\n") == 1 and "bad.yml" in out and "jensen_shannon_distance" in out and ">= 0" in out
    assert _json("schedule", "list") == []
