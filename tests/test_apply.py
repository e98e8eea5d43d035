"""Declarative fleets: `fleet apply | plan | export | schema` against a real server and replicas."""

from __future__ import annotations

import json
import platform
import shutil
from pathlib import Path

import pytest
import sklearn
import yaml

from modelfleet.fleetfile import desired as fleetfile, planner
from modelfleet.domain.errors import SpecError
from modelfleet.cli.quickstart import train
from modelfleet.assets.models import Model
from modelfleet.schema.documents import DeploymentSpec
from modelfleet.schema.validation import validate
from modelfleet.store.artifacts import content_digest

from .helpers import run_cli, write

IRIS_ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]

SUITE = [("model_a", "v1", "Model A for user segment 1", "aci-model-a", "iris"),
         ("model_b", "v1", "Model B for user segment 2", "aci-model-b", "wine"),
         ("model_c", "v2", "Model C for user segment 3", "aci-model-c", "breast_cancer")]

SCORE_PY = """
import json, os
from pathlib import Path
import joblib

def init():
    global model
    model = joblib.load(next(Path(os.environ["AZUREML_MODEL_DIR"]).rglob("*.pkl")))

def run(raw_data):
    return {"scored": model.predict(json.loads(raw_data)["data"]).tolist()}
"""

BROKEN_SCORE_PY = """
def init():
    raise RuntimeError("this model cannot load")

def run(raw_data):
    return None
"""


def suite_doc(models: dict[str, tuple[str, str]], endpoints=("aci-model-a", "aci-model-b", "aci-model-c")) -> dict:
    """The seed's three-model fleet; `models` maps a model name to (version, relative path)."""
    by_endpoint = {ep: name for name, _, _, ep, _ in SUITE}
    return {
        "models": [{"name": name, "version": models[name][0], "path": models[name][1], "description": desc}
                   for name, _, desc, _, _ in SUITE],
        "endpoints": [{"name": ep, "traffic": {"default": 100}} for ep in endpoints],
        "deployments": [{"name": "default", "endpoint_name": ep, "model": f"{by_endpoint[ep]}:{models[by_endpoint[ep]][0]}"}
                        for ep in endpoints],
    }


def pids(fleet) -> dict[str, list[int]]:
    return {d["endpoint_name"]: sorted(r["pid"] for r in d["replicas"]) for d in fleet.online_deployments.list()}


@pytest.fixture(scope="module")
def suite_models(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("suite")
    for name, _, _, _, dataset in SUITE:
        train(dataset, root / "models" / name)
    train("wine", root / "models" / "model_b_v2", variant=2)
    return root


# -- planning without a server -------------------------------------------------------------------

def test_plan_compares_content_and_resolves_references(tmp_path, models_dir):
    shutil.copytree(models_dir / "iris", tmp_path / "iris")
    write(tmp_path / "fleet.yaml", """
        models:
          - {name: iris, path: ./iris}
        endpoints:
          - {name: ep-one, traffic: {blue: 100}}
        deployments:
          - {name: blue, endpoint_name: ep-one, model: iris}
    """)
    desired = fleetfile.load(tmp_path / "fleet.yaml")
    empty = planner.Current([], [], [])
    lines = [c.line() for c in planner.make_plan(desired, empty).changes]
    assert lines == ["+ model iris:1 (next version)", "+ endpoint ep-one",
                     "+ deployment ep-one/blue (model iris:1)", "+ traffic ep-one (blue=100)"]

    sha, files = content_digest(tmp_path / "iris")
    v3 = Model("iris", "3", "sklearn", "", sha, 1, files, {})
    other = Model("iris", "4", "sklearn", "", "0" * 64, 1, files, {})
    ep = {"name": "ep-one", "auth_mode": "key", "compute": "local", "description": "", "tags": {},
          "traffic": {"blue": 100}, "mirror_traffic": {}, "deployments": ["blue"]}
    dep = {"name": "blue", "endpoint_name": "ep-one", "model": "iris:3", "code": None, "instance_count": 1,
           "environment_variables": {}, "request_settings": None, "liveness_probe": None,
           "readiness_probe": {"failure_threshold": 60, "period": 1}, "batching": None,
           "description": "", "tags": {}, "provisioning_state": "Succeeded", "replicas": [{"pid": 1}]}
    # same files as version 3 (not the newest): nothing to register, nothing to roll out
    assert not planner.make_plan(desired, planner.Current([v3, other], [ep], [dep]))
    # every deployment setting is compared, nested ones included
    spec = desired.deployments[0].spec
    desired.deployments[0].spec = validate(DeploymentSpec, {**spec.model_dump(exclude_none=True),
                                                            "resources": {"limits": {"memory": "512Mi"}}})
    assert [c.line() for c in planner.make_plan(desired, planner.Current([v3], [ep], [dep])).changes] == [
        "~ deployment ep-one/blue: resources {requests={cpu=None, memory=None}, limits={memory=None}} -> "
        "{requests={cpu=None, memory=None}, limits={memory=512Mi}}"]
    desired.deployments[0].spec = spec
    # a deployment pinned to a version that exists nowhere is named
    desired.deployments[0].spec = desired.deployments[0].spec.model_copy(update={"model": "iris:9"})
    with pytest.raises(SpecError, match=r"deployments\[0\]\.model: model iris:9 not found"):
        planner.make_plan(desired, planner.Current([v3], [ep], [dep]))
    # an explicit version whose files differ from the registered ones: versions are immutable
    desired.models[0].spec = desired.models[0].spec.model_copy(update={"version": "4"})
    with pytest.raises(SpecError, match="model iris:4 already exists with different content"):
        planner.make_plan(desired, planner.Current([v3, other], [ep], [dep]))


def test_plan_moves_traffic_before_pruning_and_refuses_to_strand_it(tmp_path):
    view = {"auth_mode": "key", "compute": "local", "description": "", "tags": {}, "mirror_traffic": {}}
    current = planner.Current([], [
        {**view, "name": "ep-keep", "traffic": {"blue": 100}, "deployments": ["blue", "green"]},
        {**view, "name": "ep-gone", "traffic": {}, "deployments": []}], [
        {"name": n, "endpoint_name": "ep-keep", "model": "m:1", "code": None, "instance_count": 1,
         "environment_variables": {}, "request_settings": None, "liveness_probe": None,
         "readiness_probe": {"period": 1, "failure_threshold": 60}, "batching": None, "description": "",
         "tags": {}, "provisioning_state": "Succeeded", "replicas": [{"pid": 1}]} for n in ("blue", "green")])
    current.models = [Model("m", "1", "sklearn", "", "0" * 64, 1, [], {})]
    fleet_file = write(tmp_path / "fleet.yaml", """
        endpoints: [{name: ep-keep, traffic: {green: 100}}]
        deployments: [{name: green, endpoint_name: ep-keep, model: "m:1"}]
    """)
    plan = planner.make_plan(fleetfile.load(fleet_file), current, prune=True)
    assert [c.line() for c in plan.changes] == [
        "~ traffic ep-keep: traffic {blue=100} -> {green=100}", "- deployment ep-keep/blue", "- endpoint ep-gone"]
    assert [c.line() for c in planner.make_plan(fleetfile.load(fleet_file), current).changes] == [
        "~ traffic ep-keep: traffic {blue=100} -> {green=100}"]
    fleet_file.write_text(fleet_file.read_text().replace(", traffic: {green: 100}", ""))
    with pytest.raises(SpecError, match="pruning blue leaves the live traffic of ep-keep nowhere"):
        planner.make_plan(fleetfile.load(fleet_file), current, prune=True)


def test_invalid_document_in_a_directory_of_ten_changes_nothing(fleet_home, tmp_path, models_dir):
    docs = tmp_path / "fleet"
    for i in range(3):
        write(docs / f"0{i}-model.yaml", f"name: m{i}\nversion: '1'\npath: {models_dir / 'iris'}\n")
        write(docs / f"1{i}-endpoint.yaml", f"name: ep-{i}\nauth_mode: key\n")
        write(docs / f"2{i}-deployment.yaml", f"name: blue\nendpoint_name: ep-{i}\nmodel: m{i}:1\n")
    write(docs / "30-deployment.yaml", "name: green\nendpoint_name: ep-0\nmodel: m0:1\ninstance_count: 0\n")
    assert len(list(docs.iterdir())) == 10
    r = run_cli("apply", "-f", str(docs), code=2)
    assert "30-deployment.yaml: instance_count:" in r.stderr and "greater than or equal to 1" in r.stderr
    # nothing was registered and the server was never even started
    assert not list(fleet_home.glob("**/run/server.json"))
    assert not list(fleet_home.glob("**/artifacts/models/*"))

    (docs / "30-deployment.yaml").write_text("name: green\nendpoint_name: ep-0\n  model: [m0\n")
    r = run_cli("plan", "-f", str(docs), code=2)
    assert "30-deployment.yaml:3:" in r.stderr and "invalid YAML" in r.stderr

    fleet_file = write(tmp_path / "one.yaml", f"""
        models: [{{name: m0, path: {models_dir / 'iris'}}}]
        endpoints: [{{name: ep-0}}]
        deployments:
          - {{name: dep-a, endpoint_name: ep-0, model: m0}}
          - {{name: dep-b, endpoint_name: ep-0, model: m0}}
          - {{name: dep-c, endpoint_name: ep-0, model: "m0:"}}
    """)
    r = run_cli("apply", "--dry-run", "-f", str(fleet_file), code=2)
    assert "one.yaml: deployments[2].model: invalid version" in r.stderr
    fleet_file.write_text(fleet_file.read_text().replace('"m0:"', "m0").replace(str(models_dir / "iris"),
                                                                                 "./no-such-model"))
    r = run_cli("apply", "-f", str(fleet_file), code=2)
    assert "models[0].path: './no-such-model' does not exist" in r.stderr
    assert not list(fleet_home.glob("**/artifacts/models/*"))


# -- against a real server -----------------------------------------------------------------------

@pytest.mark.slow
def test_apply_reapply_change_export_and_prune(fleet, tmp_path, suite_models):
    shutil.copytree(suite_models / "models", tmp_path / "models")
    fleet_file = tmp_path / "fleet.yaml"
    versions = {name: (version, f"./models/{name}") for name, version, *_ in SUITE}
    fleet_file.write_text(yaml.safe_dump(suite_doc(versions)))

    plan = run_cli("plan", "-f", str(fleet_file))
    assert "+ model model_a:v1" in plan.stdout and "+ deployment aci-model-c/default (model model_c:v2)" in plan.stdout
    assert "Plan: 12 to create, 0 to update, 0 to delete." in plan.stdout
    assert fleet.models.list() == []  # planning changed nothing

    r = run_cli("apply", "-f", str(fleet_file))
    assert "Applied 12 of 12 changes." in r.stdout
    # apply sends the endpoints from several threads: one of them starts the server, once
    assert "already running" not in (fleet.workspace.logs_dir / "server.log").read_text()
    deps = {d["endpoint_name"]: d for d in fleet.online_deployments.list()}
    assert {ep: (d["model"], d["provisioning_state"]) for ep, d in deps.items()} == {
        "aci-model-a": ("model_a:v1", "Succeeded"), "aci-model-b": ("model_b:v1", "Succeeded"),
        "aci-model-c": ("model_c:v2", "Succeeded")}
    assert fleet.models.get("model_c", "v2").description == "Model C for user segment 3"
    assert len(fleet.online_endpoints.invoke("aci-model-a", {"data": IRIS_ROWS})) == 2
    before = pids(fleet)

    # idempotent: nothing planned, nothing sent, no replica restarted
    assert run_cli("apply", "-f", str(fleet_file)).stdout.strip() == "no changes"
    assert run_cli("plan", "-f", str(fleet_file)).stdout.strip() == "no changes"
    assert pids(fleet) == before

    # a new version of one model: only its deployment rolls out
    versions["model_b"] = ("v2", "./models/model_b_v2")
    fleet_file.write_text(yaml.safe_dump(suite_doc(versions)))
    plan = run_cli("plan", "-f", str(fleet_file), "-o", "json")
    changes = json.loads(plan.stdout)["changes"]
    assert [(c["action"], c["kind"], c["name"]) for c in changes] == [
        ("create", "model", "model_b:v2"), ("update", "deployment", "aci-model-b/default")]
    assert changes[1]["fields"] == {"model": {"from": "model_b:v1", "to": "model_b:v2"}}
    r = run_cli("apply", "-f", str(fleet_file))
    assert "~ deployment aci-model-b/default: model model_b:v1 -> model_b:v2" in r.stdout
    after = pids(fleet)
    assert after["aci-model-a"] == before["aci-model-a"] and after["aci-model-c"] == before["aci-model-c"]
    assert after["aci-model-b"] != before["aci-model-b"]
    assert fleet.online_deployments.get("default", "aci-model-b")["model"] == "model_b:v2"

    # export round-trips: applying it changes nothing
    export_file = tmp_path / "export" / "fleet.yaml"
    run_cli("export", "-f", str(export_file))
    exported = yaml.safe_load(export_file.read_text())
    assert {(m["name"], m["version"]) for m in exported["models"]} == {
        ("model_a", "v1"), ("model_b", "v1"), ("model_b", "v2"), ("model_c", "v2")}
    assert run_cli("apply", "-f", str(export_file)).stdout.strip() == "no changes"
    run_cli("export", "--copy-models", "-f", str(tmp_path / "copied" / "fleet.yaml"))
    assert (tmp_path / "copied" / "models" / "model_b" / "v2" / "model_b_v2" / "model.joblib").is_file()
    assert run_cli("plan", "-f", str(tmp_path / "copied" / "fleet.yaml")).stdout.strip() == "no changes"

    # what the file no longer names stays, unless --prune
    fleet_file.write_text(yaml.safe_dump(suite_doc(versions, endpoints=("aci-model-a", "aci-model-b"))))
    assert run_cli("plan", "-f", str(fleet_file)).stdout.strip() == "no changes"
    plan = run_cli("plan", "--prune", "-f", str(fleet_file))
    assert plan.stdout.splitlines() == ["- endpoint aci-model-c (and its deployments default)",
                                        "Plan: 0 to create, 0 to update, 1 to delete."]
    run_cli("apply", "--prune", "-f", str(fleet_file))
    assert [ep["name"] for ep in fleet.online_endpoints.list()] == ["aci-model-a", "aci-model-b"]
    assert pids(fleet) == {k: v for k, v in after.items() if k != "aci-model-c"}
    assert run_cli("apply", "--prune", "-f", str(fleet_file)).stdout.strip() == "no changes"


@pytest.mark.slow
def test_azure_files_apply_with_notices_and_a_failed_rollout_keeps_the_old_version(fleet, tmp_path, models_dir):
    az = tmp_path / "azureml-examples"
    model_dir = az / "model-1" / "model"
    model_dir.mkdir(parents=True)
    shutil.copyfile(models_dir / "iris" / "model.joblib", model_dir / "sklearn_regression_model.pkl")
    write(az / "model-1" / "onlinescoring" / "score.py", SCORE_PY)
    # Azure's example pins the Python its image had; this one pins the server's, so it can be built here
    write(az / "model-1" / "environment" / "conda.yaml", f"""
        name: model-env
        channels:
          - conda-forge
        dependencies:
          - python={".".join(platform.python_version().split(".")[:2])}
          - scikit-learn={sklearn.__version__}
          - pip
          - pip:
            - joblib
    """)
    write(az / "cli" / "endpoints" / "endpoint.yml", """
        $schema: https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json
        name: my-endpoint
        auth_mode: key
    """)
    write(az / "cli" / "endpoints" / "blue-deployment.yml", """
        $schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
        name: blue
        endpoint_name: my-endpoint
        model:
          path: ../../model-1/model/
        code_configuration:
          code: ../../model-1/onlinescoring/
          scoring_script: score.py
        environment:
          conda_file: ../../model-1/environment/conda.yaml
          image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest
        instance_type: Standard_DS3_v2
        instance_count: 1
    """)
    r = run_cli("apply", "-f", str(az / "cli" / "endpoints"))
    assert "blue-deployment.yml: field 'environment.image' is kept but not used" in r.stderr
    assert "blue-deployment.yml: field 'instance_type' has no meaning on modelfleet; ignored" in r.stderr
    assert "+ model my-endpoint-blue:1" in r.stdout  # the inline model, registered under the deployment's name
    answer = fleet.online_endpoints.invoke("my-endpoint", {"data": IRIS_ROWS})
    assert answer == {"scored": [0, 2]}
    # the inline environment: an anonymous version, as Azure names it, built from the conda file
    env = fleet.online_deployments.get("blue", "my-endpoint")["environment"]
    assert env.startswith("CliV2AnonymousEnvironment:") and fleet.environments.resolve(env).to_dict()["built"]
    assert run_cli("apply", "-f", str(az / "cli" / "endpoints")).stdout.strip() == "no changes"

    # export (inline model and code snapshot included) round-trips
    run_cli("export", "-f", str(tmp_path / "export.yaml"))
    assert run_cli("plan", "-f", str(tmp_path / "export.yaml")).stdout.strip() == "no changes"

    # a second endpoint in a multi-document file; then one good and one broken update in one apply
    write(tmp_path / "broken" / "score.py", BROKEN_SCORE_PY)
    multi = tmp_path / "multi.yaml"
    multi.write_text("\n---\n".join([
        "name: other-endpoint\nauth_mode: key\n",
        f"name: blue\nendpoint_name: other-endpoint\nmodel: my-endpoint-blue:1\n"
        f"code_configuration: {{code: {az / 'model-1' / 'onlinescoring'}, scoring_script: score.py}}\n",
        (az / "cli" / "endpoints" / "endpoint.yml").read_text(),
        (az / "cli" / "endpoints" / "blue-deployment.yml").read_text().replace("../../", f"{az}/"),
    ]))
    run_cli("apply", "-f", str(multi))
    before = pids(fleet)
    text = multi.read_text()
    text = text.replace("instance_count: 1", "instance_count: 1\nenvironment_variables: {SEGMENT: '2'}")
    text = text.replace(f"{{code: {az / 'model-1' / 'onlinescoring'}", f"{{code: {tmp_path / 'broken'}")
    multi.write_text(text)
    r = run_cli("apply", "-f", str(multi), code=1)
    assert "FAILED  ~ deployment other-endpoint/blue" in r.stdout and "this model cannot load" in r.output
    assert "ok      ~ deployment my-endpoint/blue" in r.stdout
    assert "1 of 2 changes failed (deployment other-endpoint/blue)" in r.stderr
    good, bad = fleet.online_deployments.get("blue", "my-endpoint"), fleet.online_deployments.get("blue", "other-endpoint")
    assert good["environment_variables"] == {"SEGMENT": "2"} and pids(fleet)["my-endpoint"] != before["my-endpoint"]
    assert bad["provisioning_state"] == "Failed" and pids(fleet)["other-endpoint"] == before["other-endpoint"]
    assert fleet.online_endpoints.invoke("other-endpoint", {"data": IRIS_ROWS}) == {"scored": [0, 2]}


@pytest.mark.slow
def test_sdk_plans_and_applies_a_fleet_file(fleet_home, tmp_path, models_dir):
    from modelfleet import Fleet
    from modelfleet.domain.errors import InvalidInput
    from modelfleet.client import load_fleet

    shutil.copytree(models_dir / "iris", tmp_path / "iris")
    fleet_file = write(tmp_path / "fleet.yaml", """
        models:
          - {name: iris, version: "1", path: ./iris, properties: {a: b}}
        endpoints:
          - {name: sdk-ep, auth_mode: key}
        deployments:
          - {name: blue, endpoint_name: sdk-ep, model: "iris:1", instance_count: 1}
    """)
    notices, heard = [], []
    with Fleet(notice=notices.append) as fleet:
        plan = fleet.plan(fleet_file)
        assert [c.line() for c in plan.changes] == [
            "+ model iris:1", "+ endpoint sdk-ep", "+ deployment sdk-ep/blue (model iris:1)"]
        assert any("field 'properties' has no meaning on modelfleet" in n for n in notices)
        assert fleet.models.list() == []  # planning changed nothing
        with pytest.raises(InvalidInput, match="prune is decided when planning"):
            fleet.apply(plan, prune=True)

        outcomes = fleet.apply(plan, progress=lambda change, state, text: heard.append((change.name, state)))
        assert [(o.change.name, o.status) for o in outcomes] == [
            ("iris:1", "ok"), ("sdk-ep", "ok"), ("sdk-ep/blue", "ok")]
        assert ("sdk-ep/blue", "running") in heard and ("sdk-ep/blue", "ok") in heard
        assert fleet.online_endpoints.invoke("sdk-ep", {"data": IRIS_ROWS}) == [0, 2]

        # a loaded fleet or a path: applying again changes nothing
        assert not fleet.plan(load_fleet(fleet_file))
        assert fleet.apply(fleet_file) == []


def test_schema_prints_json_schema_of_each_kind(fleet_home):
    fleet_schema = json.loads(run_cli("schema").stdout)
    assert set(fleet_schema["properties"]) >= {"models", "endpoints", "deployments"}
    deployment = json.loads(run_cli("schema", "deployment").stdout)
    assert {"endpoint_name", "model", "code_configuration", "request_settings"} <= set(deployment["properties"])
    run_cli("schema", "widget", code=2)
