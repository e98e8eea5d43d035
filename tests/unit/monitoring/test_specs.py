"""Monitoring documents: Azure's shapes validate, mistakes name their field."""

from __future__ import annotations

import datetime as dt

import pytest
import yaml

from modelfleet.domain.errors import SpecError
from modelfleet.schema.monitoring import MonitorScheduleSpec, duration_seconds, next_run
from modelfleet.schema.documents import DeploymentSpec
from modelfleet.schema.validation import validate

AZURE_MONITOR = """
$schema: http://azureml/sdk-2-0/Schedule.json
name: credit_default_monitor
trigger:
  type: recurrence
  frequency: day
  interval: 1
  schedule:
    hours: 3
    minutes: 15
create_monitor:
  compute:
    instance_type: standard_e4s_v3
    runtime_version: "3.3"
  monitoring_target:
    ml_task: classification
    endpoint_deployment_id: azureml:credit-default:main
  monitoring_signals:
    advanced_data_drift:
      type: data_drift
      reference_data:
        input_data:
          path: azureml:credit-reference:1
          type: mltable
        data_context: training
        target_column_name: DEFAULT_NEXT_MONTH
      features:
        top_n_feature_importance: 10
      metric_thresholds:
        numerical:
          jensen_shannon_distance: 0.01
        categorical:
          pearsons_chi_squared_test: 0.02
    advanced_data_quality:
      type: data_quality
      reference_data:
        input_data:
          path: azureml:credit-reference:1
          type: mltable
        data_context: training
      metric_thresholds:
        numerical:
          null_value_rate: 0.01
        categorical:
          out_of_bounds_rate: 0.02
  alert_notification:
    emails:
      - abc@example.com
"""


def _monitor(**changes) -> dict:
    doc = yaml.safe_load(AZURE_MONITOR)
    for path, value in changes.items():
        node = doc
        keys = path.split(".")
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    return doc


def test_azures_monitor_yaml_validates_with_notices_for_what_has_no_meaning_here():
    spec = validate(MonitorScheduleSpec, _monitor())
    signals = spec.create_monitor.monitoring_signals
    assert signals["advanced_data_drift"].thresholds() == {"numerical": {"jensen_shannon_distance": 0.01},
                                                          "categorical": {"pearsons_chi_squared_test": 0.02}}
    notices = "\n".join(spec.notices())
    assert "create_monitor.compute" in notices and "emails" in notices


@pytest.mark.parametrize("path, value, message", [
    ("create_monitor.monitoring_signals.advanced_data_drift.metric_thresholds",
     {"numerical": {"jensen_shanon_distance": 0.1}}, "jensen_shanon_distance: not a metric"),
    ("create_monitor.monitoring_signals.advanced_data_quality.metric_thresholds",
     {"numerical": {"jensen_shannon_distance": 0.1}}, "not a numerical metric of data_quality"),
    ("create_monitor.monitoring_signals.advanced_data_drift.type", "concept_drift", "type"),
    ("create_monitor.monitoring_target.endpoint_deployment_id", "credit-default", "azureml:ENDPOINT:DEPLOYMENT"),
    ("trigger", {"type": "cron", "expression": "every day"}, "not a cron expression"),
    ("trigger", {"type": "recurrence"}, "needs frequency"),
])
def test_mistakes_name_their_field(path, value, message):
    with pytest.raises(SpecError, match=message) as e:
        validate(MonitorScheduleSpec, _monitor(**{path: value}), "monitor.yml")
    assert str(e.value).startswith("monitor.yml: ") and "\n" not in str(e.value)


def test_a_deployments_data_collector_is_azures_block():
    spec = validate(DeploymentSpec, {"name": "blue", "model": "m:1", "data_collector": {
        "collections": {"model_inputs": {"enabled": "True"}, "Model_Outputs": {"enabled": True, "sampling_rate": 0.5},
                        "request": {"enabled": False}},
        "sampling_rate": 0.25, "rolling_rate": "Minute", "request_logging": {"capture_headers": ["x-user"]}}})
    dc = spec.data_collector
    assert dc.enabled() == {"model_inputs": 0.25, "model_outputs": 0.5}
    assert dc.rolling_rate == "minute" and spec.notices() == []
    assert spec.data()["data_collector"]["collections"]["model_outputs"]["sampling_rate"] == 0.5
    with pytest.raises(SpecError, match=r"data_collector.rolling_rate"):
        validate(DeploymentSpec, {"name": "b", "model": "m:1", "data_collector": {"rolling_rate": "week"}})
    with pytest.raises(SpecError, match=r"data_collector.collections.model_inputs.sampling_rate"):
        validate(DeploymentSpec, {"name": "b", "model": "m:1",
                                  "data_collector": {"collections": {"model_inputs": {"sampling_rate": 2}}}})


def test_durations_and_next_runs():
    assert duration_seconds("P7D") == 7 * 86400 and duration_seconds("PT1H30M") == 5400
    with pytest.raises(ValueError, match="ISO 8601"):
        duration_seconds("7 days")
    at = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.timezone.utc)
    spec = validate(MonitorScheduleSpec, _monitor(trigger={"type": "recurrence", "frequency": "hour", "interval": 6}))
    assert next_run(spec.trigger, at) == at + dt.timedelta(hours=6)
    spec = validate(MonitorScheduleSpec, _monitor(trigger={"type": "cron", "expression": "15 3 * * *"}))
    assert next_run(spec.trigger, at) == dt.datetime(2026, 1, 2, 3, 15, tzinfo=dt.timezone.utc)
