"""Azure-style deployment scripts and YAML, run with `az ml` mapped to `fleet` and nothing else changed.

The scripts follow the shape of Microsoft's published online-endpoint scripts (safe rollout, local
testing): state read with `--query ... -o tsv`, keys and URIs fetched the same way, templated files
filled with `create -f ... --set`, scaling with `update --set`, clean-up with `delete --yes
--no-wait`, `--local` on every command of the local tutorial, az's global options throughout, and
output parsed as JSON where no -o is given. The YAML is written as Azure reads it: `auth_mode: Key`,
`compute: azureml:NAME`, an inline model whose `version: 2` is a number and whose type is
`mlflow_model`, Azure-only fields, and MLflow requests with `input_data` columns.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

# every test here starts a server and replicas, its metadata in SQLite and in PostgreSQL
from .helpers import SCRIPT_HEAD

pytestmark = [pytest.mark.slow, pytest.mark.databases]


SAFE_ROLLOUT = SCRIPT_HEAD + """
ENDPOINT_NAME=endpt-rollout
az ml online-endpoint create --name $ENDPOINT_NAME -f endpoint.yml -g my-group -w my-ws --subscription my-sub
az ml online-deployment create --name blue --endpoint $ENDPOINT_NAME -f blue-deployment.yml --all-traffic \\
    -g my-group -w my-ws --only-show-errors

STATE=$(az ml online-endpoint show -n $ENDPOINT_NAME -w my-ws --query provisioning_state -o tsv)
[ "$STATE" = Succeeded ] || { echo "endpoint state: $STATE" >&2; exit 3; }
STATE=$(az ml online-deployment show -n blue -e $ENDPOINT_NAME -w my-ws --query provisioning_state -o tsv)
[ "$STATE" = Succeeded ] || { echo "deployment state: $STATE" >&2; exit 3; }
KEY=$(az ml online-endpoint get-credentials -n $ENDPOINT_NAME -w my-ws --query primaryKey -o tsv)
SCORING_URI=$(az ml online-endpoint show -n $ENDPOINT_NAME -w my-ws --query scoring_uri -o tsv)
curl -sf -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" \\
    -d @sample-request.json "$SCORING_URI" > curl-answer.json

az ml online-endpoint invoke --name $ENDPOINT_NAME -w my-ws --request-file sample-request.json > blue-answer.json
az ml online-deployment update --name blue --endpoint $ENDPOINT_NAME -w my-ws --set instance_count=2 --verbose -o none
az ml online-deployment show -n blue -e $ENDPOINT_NAME -w my-ws --query "length(replicas)" -o tsv > replicas.txt

az ml online-deployment create -f template-deployment.yml -w my-ws \\
    --set name=green endpoint_name=$ENDPOINT_NAME model=azureml:iris-mlflow:2 -o none
az ml online-endpoint invoke --name $ENDPOINT_NAME -w my-ws --deployment green --request-file sample-request.json \\
    > green-answer.json
az ml online-endpoint update --name $ENDPOINT_NAME -w my-ws --traffic "blue=90 green=10" -o none
az ml online-endpoint update --name $ENDPOINT_NAME -w my-ws --traffic "blue:0,green:100" -o none
az ml online-endpoint show -n $ENDPOINT_NAME -w my-ws > endpoint.json
az ml online-deployment list -e $ENDPOINT_NAME -w my-ws --query "[].name" -o tsv > deployments.txt

az ml online-deployment delete --name blue --endpoint $ENDPOINT_NAME -w my-ws --yes --no-wait
az ml online-endpoint delete --name $ENDPOINT_NAME -w my-ws --yes --no-wait
az ml online-endpoint list -w my-ws --query "[].name" -o tsv > endpoints-left.txt
"""

LOCAL_TUTORIAL = SCRIPT_HEAD + """
ENDPOINT_NAME=endpt-local
az ml online-endpoint create --local -n $ENDPOINT_NAME -f endpoint.yml -w my-ws
az ml online-deployment create --local -n blue --endpoint $ENDPOINT_NAME -f blue-deployment.yml -w my-ws
az ml online-endpoint show -n $ENDPOINT_NAME --local -w my-ws --query provisioning_state -o tsv > local-state.txt
az ml online-endpoint invoke --local --name $ENDPOINT_NAME -w my-ws --request-file sample-request.json > local-answer.json
az ml online-deployment get-logs --local -n blue --endpoint $ENDPOINT_NAME -w my-ws --lines 50 > local-logs.txt
az ml online-endpoint delete --local --name $ENDPOINT_NAME -w my-ws --yes
"""

ENDPOINT_YAML = """$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json
name: my-endpoint
auth_mode: Key
compute: azureml:local
identity:
  type: system_assigned
"""

BLUE_YAML = """$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: blue
endpoint_name: my-endpoint
model:
  name: iris-mlflow
  version: 2
  path: ./mlflow-model
  type: mlflow_model
instance_type: Standard_DS3_v2
instance_count: 1
"""

TEMPLATE_YAML = """$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: to-be-set
endpoint_name: to-be-set
model: to-be-set
instance_type: Standard_DS3_v2
instance_count: 1
request_settings:
  request_timeout_ms: 3000
"""


@pytest.fixture(scope="module")
def azure_dir(tmp_path_factory):
    """An MLflow model with a named-column signature, the YAML of an Azure ML example, a request."""
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.datasets import load_iris
    from sklearn.tree import DecisionTreeClassifier
    work = tmp_path_factory.mktemp("azure-scripts")
    X, y = load_iris(return_X_y=True, as_frame=True)
    model = DecisionTreeClassifier(random_state=0).fit(X, y)
    mlflow.sklearn.save_model(model, work / "mlflow-model", serialization_format="cloudpickle",
                             signature=infer_signature(X, y))
    (work / "endpoint.yml").write_text(ENDPOINT_YAML)
    (work / "blue-deployment.yml").write_text(BLUE_YAML)
    (work / "template-deployment.yml").write_text(TEMPLATE_YAML)
    rows = X.iloc[[0, 75, 149]]
    shuffled = list(reversed(X.columns))  # named columns in another order than the model's
    (work / "sample-request.json").write_text(json.dumps({"input_data": {
        "columns": shuffled, "index": [0, 1, 2], "data": rows[shuffled].values.tolist()}}))
    expected = model.predict(rows).tolist()
    # the same rows with their columns in the wrong places would be scored differently
    assert model.predict(pd.DataFrame(rows[shuffled].values, columns=X.columns)).tolist() != expected
    return work, expected


def _bash(work: Path, script: str, env: dict) -> subprocess.CompletedProcess:
    (work / "script.sh").write_text(script)
    p = subprocess.run(["bash", "script.sh"], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, (p.stdout, p.stderr)
    return p


@pytest.fixture
def az_env(fleet_home):
    env = {**os.environ, "FLEET_HOME": str(fleet_home),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(["fleet", "workspace", "create", "-w", "my-ws", "-o", "none"], env=env, check=True)
    return env


def test_safe_rollout_script_runs_unchanged(azure_dir, az_env):
    work, expected = azure_dir
    p = _bash(work, SAFE_ROLLOUT, az_env)
    # Azure-only fields are named once each; --only-show-errors silenced the deployment's
    assert "field 'identity' has no meaning on modelfleet" in p.stderr
    assert p.stderr.count("'instance_type'") == 1  # the template's; blue's was silenced
    answers = {name: json.loads((work / f"{name}-answer.json").read_text()) for name in ("curl", "blue", "green")}
    assert answers == {"curl": expected, "blue": expected, "green": expected}
    assert (work / "replicas.txt").read_text() == "2\n"
    endpoint = json.loads((work / "endpoint.json").read_text())  # no -o, piped: JSON as az prints it
    assert endpoint["id"] == ("/subscriptions/local/resourceGroups/local/providers/"
                              "Microsoft.MachineLearningServices/workspaces/my-ws/onlineEndpoints/endpt-rollout")
    assert endpoint["traffic"] == {"green": 100}
    assert endpoint["auth_mode"] == "key" and endpoint["compute"] == "local"
    assert (work / "deployments.txt").read_text().split() == ["blue", "green"]
    assert (work / "endpoints-left.txt").read_text() == ""
    listed = json.loads(subprocess.run(["fleet", "model", "list", "-w", "my-ws"], env=az_env, capture_output=True,
                                       text=True).stdout)
    assert [(m["name"], m["version"], m["type"]) for m in listed] == [("iris-mlflow", "2", "mlflow")]


def test_local_testing_tutorial_with_local_everywhere(azure_dir, az_env):
    work, expected = azure_dir
    p = _bash(work, LOCAL_TUTORIAL, az_env)
    assert p.stderr.count("--local: modelfleet always runs on this machine") == 1
    assert (work / "local-state.txt").read_text() == "Succeeded\n"
    assert json.loads((work / "local-answer.json").read_text()) == expected
    assert "ready in" in (work / "local-logs.txt").read_text()


def test_compute_names_and_enums_as_azure_writes_them(az_env, tmp_path):
    def fleet(*args):
        return subprocess.run(["fleet", *args], env=az_env, capture_output=True, text=True, cwd=tmp_path)
    (tmp_path / "k8s.yml").write_text("name: on-k8s\nauth_mode: AMLToken\ncompute: azureml:k8s-cluster\n")
    r = fleet("online-endpoint", "create", "-f", "k8s.yml")
    assert r.returncode == 1 and "compute 'k8s-cluster' not found" in r.stderr
    assert "on-k8s" not in fleet("online-endpoint", "list", "--query", "[].name", "-o", "tsv").stdout  # nothing made
    (tmp_path / "bad.yml").write_text("name: bad-auth\nauth_mode: Certificate\n")
    r = fleet("online-endpoint", "create", "-f", "bad.yml")
    assert r.returncode == 2 and "auth_mode: 'certificate' is not an auth mode" in r.stderr
