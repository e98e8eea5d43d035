"""Endpoints and deployments through the client and the real control API in process (replicas
are fakes): create, update, traffic, keys, code snapshots uploaded, plan/apply/export, errors."""

from __future__ import annotations

import textwrap

import pytest

from modelfleet.domain.errors import AlreadyExists, Conflict, InvalidInput, NotFound, PreconditionFailed


@pytest.fixture
def model(api_fleet, tmp_path):
    d = tmp_path / "src" / "iris"
    d.mkdir(parents=True)
    (d / "model.joblib").write_bytes(b"weights")
    return api_fleet.models.register("iris", d, "1")


def test_endpoint_create_get_update_list_keys_and_delete(api_fleet):
    ep = api_fleet.online_endpoints.create("ep-a", description="first", tags={"team": "risk"})
    assert (ep.name, ep.auth_mode, ep.compute, ep.tags) == ("ep-a", "key", "local", {"team": "risk"})
    with pytest.raises(AlreadyExists, match="ep-a"):
        api_fleet.online_endpoints.create("ep-a")
    assert api_fleet.online_endpoints.update("ep-a", description="second", tags={"team": None}).tags == {}
    assert [e.name for e in api_fleet.online_endpoints.list()] == ["ep-a"]
    keys = api_fleet.online_endpoints.get_keys("ep-a")
    new = api_fleet.online_endpoints.regenerate_keys("ep-a", "secondary")
    assert new["primaryKey"] == keys["primaryKey"] and new["secondaryKey"] != keys["secondaryKey"]
    with pytest.raises(InvalidInput, match="key_type"):
        api_fleet.online_endpoints.regenerate_keys("ep-a", "tertiary")
    with pytest.raises(InvalidInput, match="auth_mode"):
        api_fleet.online_endpoints.create("ep-b", auth_mode="password")
    with pytest.raises(NotFound, match="compute 'far'"):
        api_fleet.online_endpoints.create("ep-c", compute="far")
    api_fleet.online_endpoints.delete("ep-a")
    with pytest.raises(NotFound, match="ep-a"):
        api_fleet.online_endpoints.get("ep-a")


def test_deployments_roll_out_update_and_split_traffic(api_fleet, inprocess, model):
    api_fleet.online_endpoints.create("ep-x")
    blue = api_fleet.online_deployments.create("blue", "ep-x", model.ref, instance_count=2)
    assert (blue.provisioning_state, blue.model, blue.instance_count) == ("Succeeded", "iris:1", 2)
    assert len([r for r in blue.replicas if r["state"] == "ready"]) == 2
    api_fleet.online_deployments.create("green", "ep-x", model.ref)
    assert api_fleet.online_endpoints.get("ep-x").traffic == {"blue": 100}
    assert api_fleet.online_endpoints.update("ep-x", traffic={"blue": 70, "green": 30}).traffic == {"blue": 70, "green": 30}
    with pytest.raises(InvalidInput, match="sum"):
        api_fleet.online_endpoints.update("ep-x", traffic={"blue": 70})
    dep = api_fleet.online_deployments.update("green", "ep-x", instance_count=3, tags={"v": "2"})
    assert (dep.instance_count, dep.tags) == (3, {"v": "2"})
    with pytest.raises(PreconditionFailed):
        api_fleet.online_deployments.update("green", "ep-x", instance_count=1, etag=blue.etag)
    with pytest.raises(InvalidInput, match="unknown deployment field"):
        api_fleet.online_deployments.update("green", "ep-x", colour="red")
    assert {d.name for d in api_fleet.online_deployments.list()} == {"blue", "green"}
    assert {d.name for d in api_fleet.online_deployments.list("ep-x")} == {"blue", "green"}
    assert isinstance(api_fleet.online_deployments.get_logs("blue", "ep-x"), str)
    api_fleet.online_endpoints.update("ep-x", traffic={"blue": 100, "green": 0})
    api_fleet.online_deployments.delete("green", "ep-x")
    with pytest.raises(NotFound, match="green"):
        api_fleet.online_deployments.get("green", "ep-x")
    with pytest.raises(NotFound, match="nope"):
        api_fleet.online_deployments.create("xyz", "nope", model.ref)
    with pytest.raises(NotFound, match="iris:9"):
        api_fleet.online_deployments.create("xyz", "ep-x", "iris:9")


def test_an_update_keeps_the_settings_it_does_not_name(api_fleet, model):
    """scale_settings and data_collector included: an update of one field changes only that field."""
    api_fleet.online_endpoints.create("ep-k")
    scale = {"type": "target_utilization", "min_instances": 1, "max_instances": 3,
             "target_utilization_percentage": 70, "polling_interval": 5}
    collector = {"collections": {"model_inputs": {"enabled": True}}}
    created = api_fleet.online_deployments.create("blue", "ep-k", model.ref, scale_settings=scale,
                                                  data_collector=collector)
    updated = api_fleet.online_deployments.update("blue", "ep-k", tags={"v": "2"})
    assert updated.tags == {"v": "2"}
    assert updated.scale_settings == created.scale_settings and updated.scale_settings["max_instances"] == 3
    assert updated.data_collector == created.data_collector is not None


def test_scoring_code_is_uploaded_as_a_snapshot_and_checked(api_fleet, inprocess, model, tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "score.py").write_text("def init():\n    pass\n\ndef run(raw):\n    return raw\n")
    api_fleet.online_endpoints.create("ep-x")
    dep = api_fleet.online_deployments.create("blue", "ep-x", model.ref,
                                          code_configuration={"code": str(code), "scoring_script": "score.py"})
    sha = dep.code_configuration["code"].removeprefix("sha256:")
    assert (inprocess.ws.artifacts / "code" / sha / "code" / "score.py").is_file()
    with pytest.raises(InvalidInput, match="other.py"):
        api_fleet.online_deployments.update("blue", "ep-x", code_configuration={"code": f"sha256:{sha}",
                                                                           "scoring_script": "other.py"})
    with pytest.raises(InvalidInput, match="does not exist"):
        api_fleet.online_deployments.create("green", "ep-x", model.ref,
                                        code_configuration={"code": str(tmp_path / "none"), "scoring_script": "s.py"})


def test_a_fleet_file_is_planned_applied_reapplied_and_exported(api_fleet, tmp_path):
    d = tmp_path / "models" / "iris"
    d.mkdir(parents=True)
    (d / "model.joblib").write_bytes(b"weights")
    file = tmp_path / "api_fleet.yaml"
    file.write_text(textwrap.dedent(f"""
        models:
          - {{name: iris, version: "1", path: {d}}}
        endpoints:
          - {{name: ep-x, auth_mode: key}}
        deployments:
          - {{name: blue, endpoint_name: ep-x, model: "iris:1", instance_count: 2}}
    """))
    plan = api_fleet.plan(file)
    assert [c.line() for c in plan.changes] == ["+ model iris:1", "+ endpoint ep-x", "+ deployment ep-x/blue (model iris:1)"]
    assert all(o.ok for o in api_fleet.apply(plan))
    assert not api_fleet.plan(file)
    from modelfleet.fleetfile.exporter import export_fleet
    doc = export_fleet(api_fleet)
    assert [(m["name"], m["version"]) for m in doc["models"]] == [("iris", "1")]
    assert doc["deployments"][0]["instance_count"] == 2
    copied = export_fleet(api_fleet, copy_models_to=tmp_path / "copy" / "models", relative_to=tmp_path / "copy")
    assert copied["models"][0]["path"] == "models/iris/1/iris"
    assert (tmp_path / "copy" / "models" / "iris" / "1" / "iris" / "model.joblib").read_bytes() == b"weights"


def test_server_settings_are_read_and_saved_for_the_next_start(api_fleet, inprocess):
    assert api_fleet.server.configure(drain_timeout_s=5)["drain_timeout_s"] == 5
    assert '"drain_timeout_s": 5' in inprocess.ws.config_file.read_text()
    with pytest.raises(InvalidInput, match="drain_timeout_s"):
        api_fleet.server.configure(drain_timeout_s=-1)
    with pytest.raises(InvalidInput, match="colour"):
        api_fleet.server.configure(colour="red")
    status = api_fleet.server.status()
    assert (status["status"], status["workspace"]) == ("running", "unit")
    with pytest.raises(Conflict, match="runs elsewhere"):
        api_fleet.server.stop()
    assert api_fleet.workspace_name == "unit"
