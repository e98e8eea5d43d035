"""Spec documents: defaults, Azure's fields, and errors that name the field's path."""

from __future__ import annotations

import pytest

from modelfleet.domain.errors import SpecError
from modelfleet.domain.names import NAME_RULE
from modelfleet.schema.deployment_settings import memory_bytes
from modelfleet.schema.documents import DeploymentSpec, EndpointSpec, FleetSpec, ModelSpec
from modelfleet.schema.validation import validate

DEPLOYMENT = {"name": "blue", "endpoint_name": "iris-ep", "model": "iris:1"}


def _refused(kind, doc, message: str, where: str = "") -> None:
    with pytest.raises(SpecError) as info:
        validate(kind, doc, where)
    assert info.value.message == message


def test_deployment_defaults():
    d = validate(DeploymentSpec, DEPLOYMENT)
    assert d.instance_count == 1 and d.environment_variables == {} and d.code_configuration is None
    rs = d.request_settings
    assert (rs.request_timeout_ms, rs.max_concurrent_requests_per_instance, rs.max_queue_size, rs.max_body_bytes) \
        == (5000, 16, 512, 16 * 1024 * 1024)
    # a stopped or wedged replica is found in seconds, not minutes
    assert (d.liveness_probe.period, d.liveness_probe.timeout, d.liveness_probe.failure_threshold) == (1, 1, 3)
    # a replica may take a minute to load its model before it counts as failed
    assert (d.readiness_probe.period, d.readiness_probe.failure_threshold) == (1, 60)
    assert (d.batching.max_batch_size, d.batching.max_batch_wait_ms) == (1, 2.0)
    assert d.resources.limits.memory is None


def test_fast_path_is_true_false_or_required():
    assert validate(DeploymentSpec, DEPLOYMENT).fast_path is True
    for given, kept in ((False, False), ("false", False), ("Required", "required"), ("TRUE", True)):
        assert validate(DeploymentSpec, {**DEPLOYMENT, "fast_path": given}).fast_path == kept
    _refused(DeploymentSpec, {**DEPLOYMENT, "fast_path": "always"},
             "deploy.yml: fast_path: 'always' is not a fast_path setting: use true, false or required", "deploy.yml")


def test_a_partial_settings_group_keeps_the_other_defaults():
    d = validate(DeploymentSpec, {**DEPLOYMENT, "request_settings": {"max_queue_size": 0},
                                  "readiness_probe": {"period": 5}})
    assert d.request_settings.max_queue_size == 0 and d.request_settings.request_timeout_ms == 5000
    assert d.readiness_probe.period == 5 and d.readiness_probe.failure_threshold == 30  # the Probe default


def test_endpoint_and_model_defaults():
    ep = validate(EndpointSpec, {"name": "iris-ep"})
    assert (ep.auth_mode, ep.compute, ep.traffic, ep.mirror_traffic) == ("key", "local", None, None)
    m = validate(ModelSpec, {"name": "iris", "path": "./iris"})
    assert (m.version, m.type, m.description, m.tags) == (None, None, "", {})


@pytest.mark.parametrize("doc, message", [
    ({**DEPLOYMENT, "instance_count": 0}, "instance_count: Input should be greater than or equal to 1"),
    ({**DEPLOYMENT, "instance_count": 65}, "instance_count: Input should be less than or equal to 64"),
    ({**DEPLOYMENT, "request_settings": {"max_queue_size": -1}},
     "request_settings.max_queue_size: Input should be greater than or equal to 0"),
    ({**DEPLOYMENT, "request_settings": {"request_timeout_ms": "soon"}},
     "request_settings.request_timeout_ms: Input should be a valid integer, unable to parse string as an integer"),
    ({**DEPLOYMENT, "request_settings": {"max_queue_size": 1, "max_queue_sise": 2}},
     "request_settings: unknown field 'max_queue_sise'"),
    ({**DEPLOYMENT, "readiness_probe": {"period": 0}}, "readiness_probe.period: Input should be greater than or equal to 1"),
    ({**DEPLOYMENT, "liveness_probe": {"timeout": 0}}, "liveness_probe.timeout: Input should be greater than or equal to 1"),
    ({**DEPLOYMENT, "batching": {"max_batch_wait_ms": -1}},
     "batching.max_batch_wait_ms: Input should be greater than or equal to 0"),
    ({**DEPLOYMENT, "batching": {"max_batch_size": 5000}},
     "batching.max_batch_size: Input should be less than or equal to 4096"),
    ({**DEPLOYMENT, "resources": {"limits": {"memory": "lots"}}},
     "resources.limits.memory: 'lots' is not a memory quantity such as 512Mi or 1Gi"),
    ({**DEPLOYMENT, "resources": {"limits": {"memory": "1Mi"}}}, "resources.limits.memory: must be at least 16Mi"),
    ({**DEPLOYMENT, "code_configuration": {"code": "."}}, "code_configuration.scoring_script: Field required"),
    ({**DEPLOYMENT, "environment_variables": ["A=1"]},
     "environment_variables: must be a mapping of names to values, got list"),
    ({**DEPLOYMENT, "name": "b"}, "name: must be 3-32 letters, digits or '-', starting with a letter, not ending with "
                                  "'-': 'b' is 1 characters long (3 to 32 allowed)"),
    ({**DEPLOYMENT, "endpoint_name": "../ep"},
     "endpoint_name: must be 3-32 letters, digits or '-', starting with a letter, not ending with '-': "
     "'../ep' starts with '.' (the first character must be a letter)"),
    ({**DEPLOYMENT, "model": "../m:1"},
     "model: invalid model name '../m': it starts with '.' (the first character must be a letter or digit); "
     "use 1-64 letters, digits, '-', '_' or '.', starting with a letter or digit"),
    ({**DEPLOYMENT, "model": {"path": ".", "type": "pickle"}},
     "model.type: 'pickle' is not a model type: use custom_model, triton_model, mlflow_model or custom, sklearn, "
     "onnx, mlflow"),
    ({"name": "blue"}, "model: Field required"),
    ({**DEPLOYMENT, "instance_typo": "x"}, "unknown field 'instance_typo'"),
])
def test_deployment_errors_name_the_field_path(doc, message):
    _refused(DeploymentSpec, doc, message)


@pytest.mark.parametrize("doc, message", [
    ({"models": [{"name": "m", "path": ".", "version": "a b"}]},
     "models[0].version: must be 1-64 letters, digits, '-', '_' or '.', starting with a letter or digit: "
     "'a b' has ' ' at position 2"),
    ({"models": [{"name": "m", "path": "."}, {"name": "n", "path": ".", "pth": "x"}]}, "models[1]: unknown field 'pth'"),
    ({"endpoints": [{"name": "ep-one", "traffic": {"blue": "most"}}]},
     "endpoints[0].traffic.blue: Input should be a valid integer, unable to parse string as an integer"),
    ({"deployments": [DEPLOYMENT, {**DEPLOYMENT, "request_settings": {"max_body_bytes": 0}}]},
     "deployments[1].request_settings.max_body_bytes: Input should be greater than or equal to 1"),
    ({"endpoints": "ep-one"}, "endpoints: Input should be a valid list"),
])
def test_fleet_errors_name_the_item_and_field(doc, message):
    _refused(FleetSpec, doc, message)


def test_errors_start_with_where_the_document_came_from():
    _refused(EndpointSpec, {"name": "ep-one", "auth_mode": "maybe"},
             "endpoint.yml: auth_mode: 'maybe' is not an auth mode: use key, aml_token or none", where="endpoint.yml")
    _refused(ModelSpec, ["name", "path"], "model.yml: expected a mapping of fields, got list", where="model.yml")
    _refused(ModelSpec, None, "document: expected a mapping of fields, got NoneType")


def test_azure_fields_are_accepted_with_a_notice_and_left_out():
    d = validate(DeploymentSpec, {**DEPLOYMENT, "$schema": "https://azuremlschemas.azureedge.net/x.json",
                                  "instance_type": "Standard_DS3_v2", "environment": "azureml:sklearn:1"})
    assert d.notices("deployment.yml") == [
        "deployment.yml: field 'instance_type' has no meaning on modelfleet; ignored"]
    assert not {"$schema", "schema_", "instance_type"} & set(d.data())
    assert d.data()["environment"] == "azureml:sklearn:1"  # environments are modelfleet's too


def test_nested_azure_fields_are_left_out_too():
    d = validate(DeploymentSpec, {**DEPLOYMENT, "request_settings": {"max_queue_wait_ms": 500},
                                  "resources": {"requests": {"cpu": 1}, "limits": {"cpu": "2", "memory": "1Gi"}}})
    data = d.data()
    assert "max_queue_wait_ms" not in data["request_settings"]
    assert data["resources"] == {"requests": {"cpu": "1"}, "limits": {"memory": "1Gi"}}
    assert d.notices("d.yml") == ["d.yml: field 'request_settings.max_queue_wait_ms' has no meaning on modelfleet; "
                                  "ignored", "d.yml: field 'resources.limits.cpu' has no meaning on modelfleet; ignored"]


@pytest.mark.parametrize("given, kept", [("aml_token", "key"), ("aad_token", "key"), ("key", "key"), ("none", "none"),
                                         ("Key", "key"), ("AMLToken", "key"), ("NONE", "none")])
def test_azure_token_auth_modes_become_keys_in_any_case(given, kept):
    assert validate(EndpointSpec, {"name": "ep-one", "auth_mode": given}).auth_mode == kept


@pytest.mark.parametrize("compute, kept", [(None, "local"), ("", "local"), ("local", "local"), ("ray-dev", "ray-dev"),
                                           ("azureml:ray-dev", "ray-dev"), ("AzureML:ray-dev", "ray-dev")])
def test_compute(compute, kept):
    assert validate(EndpointSpec, {"name": "ep-one", "compute": compute}).compute == kept


def test_a_compute_name_follows_the_name_rule():
    _refused(EndpointSpec, {"name": "ep-one", "compute": "azureml:a/b"},
             f"compute: invalid compute name 'a/b': it has '/' at position 2; use {NAME_RULE}")


@pytest.mark.parametrize("given, kept", [("mlflow_model", "mlflow"), ("custom_model", None), ("triton_model", None),
                                         ("sklearn", "sklearn"), ("onnx", "onnx"), ("custom", "custom")])
def test_model_types_azure_names_map_onto_ours(given, kept):
    assert validate(ModelSpec, {"name": "m", "path": ".", "type": given}).type == kept


def test_values_that_are_text_on_azure_become_text():
    m = validate(ModelSpec, {"name": "m", "path": ".", "version": 3, "tags": {"a": None, "b": 1}})
    assert m.version == "3" and m.tags == {"a": "", "b": "1"}
    d = validate(DeploymentSpec, {**DEPLOYMENT, "environment_variables": {"N": 4, "FLAG": True}})
    assert d.environment_variables == {"N": "4", "FLAG": "True"}


@pytest.mark.parametrize("text, size", [
    ("300Mi", 300 * 2**20), ("1Gi", 2**30), ("512M", 512 * 10**6), ("2k", 2000), ("1Ki", 1024),
    ("1024", 1024), (4096, 4096), (" 1.5Gi ", int(1.5 * 2**30)), ("1gi", 2**30),
])
def test_memory_quantities(text, size):
    assert memory_bytes(text) == size


@pytest.mark.parametrize("text", ["lots", "1Ti", "-1Mi", "1 Mi B", ""])
def test_bad_memory_quantities(text):
    with pytest.raises(ValueError, match="is not a memory quantity such as 512Mi or 1Gi"):
        memory_bytes(text)
