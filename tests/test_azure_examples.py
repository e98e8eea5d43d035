"""The patterns of Azure's published online-endpoint examples, in scripts and YAML of our own, run
with `az ml` mapped to `fleet` and nothing else changed:

- the managed sample: an inline environment whose conda file pins another Python than the
  server's, beside an image; a score.py reading $AZUREML_MODEL_DIR and logging with `logging`;
  the key fetched with --query and used by curl; get-logs;
- every Python installed in 3.10-3.13 serving from its own interpreter, and the strict policy
  refusing a missing one in one line;
- the local-endpoint tutorial: `--local` endpoints answer curl without a key on loopback;
- the multi-model custom container: an image that is not Azure's runs on the default environment.

Environments pin exact versions: the suite builds the same thing on any later day.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from modelfleet.envbuild.interpreters import discover

from .helpers import RAY_GROUP, SCRIPT_HEAD, compute_row

pytestmark = pytest.mark.slow  # every test here starts a server and replicas

NUMPY = "numpy==2.2.6"   # has wheels for every Python 3.10-3.13


MANAGED_SAMPLE = SCRIPT_HEAD + """
ENDPOINT_NAME=endpt-moe-$RANDOM
az ml online-endpoint create --name $ENDPOINT_NAME -f endpoint.yml
az ml online-deployment create --name blue --endpoint $ENDPOINT_NAME -f blue-deployment.yml --all-traffic
endpoint_status=`az ml online-endpoint show --name $ENDPOINT_NAME --query "provisioning_state" -o tsv`
[[ $endpoint_status == "Succeeded" ]] || exit 3
deploy_status=`az ml online-deployment show --name blue --endpoint $ENDPOINT_NAME --query "provisioning_state" -o tsv`
[[ $deploy_status == "Succeeded" ]] || exit 3
az ml online-endpoint invoke --name $ENDPOINT_NAME --request-file sample-request.json > invoke-answer.json
ENDPOINT_KEY=$(az ml online-endpoint get-credentials -n $ENDPOINT_NAME -o tsv --query primaryKey)
SCORING_URI=$(az ml online-endpoint show -n $ENDPOINT_NAME -o tsv --query scoring_uri)
curl -sf --request POST "$SCORING_URI" --header "Authorization: Bearer $ENDPOINT_KEY" \\
    --header 'Content-Type: application/json' --data @sample-request.json > curl-answer.json
az ml online-deployment get-logs --name blue --endpoint $ENDPOINT_NAME > logs.txt
az ml online-deployment show --name blue --endpoint $ENDPOINT_NAME --query environment -o tsv > environment.txt
az ml online-endpoint delete --name $ENDPOINT_NAME --yes --no-wait
"""

LOCAL_ENDPOINT = SCRIPT_HEAD + """
ENDPOINT_NAME=endpt-$RANDOM
az ml online-endpoint create --local -n $ENDPOINT_NAME -f endpoint.yml
az ml online-deployment create --local -n blue --endpoint $ENDPOINT_NAME -f blue-deployment.yml
SCORING_URI=$(az ml online-endpoint show --local -n $ENDPOINT_NAME -o tsv --query scoring_uri)
curl -sf --request POST "$SCORING_URI" --header 'Content-Type: application/json' \\
    --data @sample-request.json > curl-answer.json
echo "$SCORING_URI" > scoring-uri.txt
"""

ENDPOINT_YAML = """$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json
name: my-endpoint
auth_mode: key
"""

DEPLOYMENT_YAML = """$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: blue
endpoint_name: my-endpoint
model:
  path: model/
code_configuration:
  code: onlinescoring/
  scoring_script: score.py
environment:
  conda_file: environment/conda.yaml
  image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest
instance_type: Standard_DS3_v2
instance_count: 1
"""

CONDA_YAML = """name: model-env
channels:
  - conda-forge
dependencies:
  - python={python}
  - {numpy}
  - pip
"""

# As Azure's sample: the model under $AZUREML_MODEL_DIR, `logging` for what it does, JSON in and out.
SCORE_PY = '''import json
import logging
import os
import sys

import numpy


def init():
    global weights
    weights = numpy.load(os.path.join(os.getenv("AZUREML_MODEL_DIR"), "model", "weights.npy"))
    logging.info("Init complete")


def run(raw_data):
    logging.info("model 1: request received")
    data = numpy.array(json.loads(raw_data)["data"])
    return {"predictions": (data @ weights[1:] + weights[0]).tolist(), "python": sys.version.split()[0]}
'''


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A linear regression trained here, kept as its weights (numpy is all a replica needs)."""
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import LinearRegression
    X, y = load_diabetes(return_X_y=True)
    model = LinearRegression().fit(X, y)
    rows = X[:2].tolist()
    return np.concatenate([[model.intercept_], model.coef_]), rows, model.predict(X[:2]).tolist()


def sample_dir(root: Path, trained, python: str) -> Path:
    weights, rows, _ = trained
    (root / "model").mkdir(parents=True)   # as Azure's sample: $AZUREML_MODEL_DIR/model/<file>
    np.save(root / "model" / "weights.npy", weights)
    (root / "onlinescoring").mkdir()
    (root / "onlinescoring" / "score.py").write_text(SCORE_PY)
    (root / "environment").mkdir()
    (root / "environment" / "conda.yaml").write_text(CONDA_YAML.format(python=python, numpy=NUMPY.replace("==", "=")))
    (root / "endpoint.yml").write_text(ENDPOINT_YAML)
    (root / "blue-deployment.yml").write_text(DEPLOYMENT_YAML)
    (root / "sample-request.json").write_text(json.dumps({"data": rows}))
    return root


@pytest.fixture
def az_env(fleet_home):
    return {**os.environ, "FLEET_HOME": str(fleet_home),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def bash(work: Path, script: str, env: dict) -> subprocess.CompletedProcess:
    (work / "script.sh").write_text(script)
    p = subprocess.run(["bash", "script.sh"], cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, (p.stdout[-3000:], p.stderr[-3000:])
    return p


def fleet(env: dict, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["fleet", *args], env=env, capture_output=True, text=True, cwd=cwd, timeout=900)


def installed_pythons() -> list[str]:
    """The minor versions of Python 3.10-3.13 installed on this machine."""
    return sorted({i.minor for i in discover()}, key=lambda v: tuple(map(int, v.split("."))))


def test_managed_sample_pins_another_python_and_serves_from_it(tmp_path, trained, az_env):
    server = f"{sys.version_info.major}.{sys.version_info.minor}"
    others = [v for v in installed_pythons() if v != server]
    if not others:
        pytest.skip("only the server's Python is installed")
    python = others[-1]
    work = sample_dir(tmp_path, trained, python)
    p = bash(work, MANAGED_SAMPLE, az_env)
    expected = trained[2]
    for name in ("invoke", "curl"):
        answer = json.loads((work / f"{name}-answer.json").read_text())
        assert answer["python"].startswith(python + ".")
        assert answer["predictions"] == pytest.approx(expected)
    logs = (work / "logs.txt").read_text()
    assert "Init complete" in logs and "model 1: request received" in logs   # logging reaches get-logs
    assert "field 'environment.image' is kept but not used" in p.stderr
    ref = (work / "environment.txt").read_text().strip()
    shown = json.loads(fleet(az_env, "environment", "show", "--name", ref.split(":")[0], "--version",
                             ref.split(":")[1], "-o", "json").stdout)
    assert shown["interpreter"]["version"].startswith(python + ".") and shown["warning"] is None


def test_every_installed_python_serves_its_own_environment(tmp_path, trained, az_env):
    pythons = installed_pythons()
    assert pythons, "no Python 3.10-3.13 found"
    endpoint = "every-python"
    fleet(az_env, "online-endpoint", "create", "--name", endpoint, "-o", "none")
    for python in pythons:
        work = sample_dir(tmp_path / python, trained, python)
        name = "py" + python.replace(".", "")
        r = fleet(az_env, "online-deployment", "create", "--name", name, "--endpoint", endpoint,
                  "-f", str(work / "blue-deployment.yml"), "-o", "none")
        assert r.returncode == 0, r.stderr
    key = json.loads(fleet(az_env, "online-endpoint", "get-credentials", "-n", endpoint).stdout)["primaryKey"]
    uri = fleet(az_env, "online-endpoint", "show", "-n", endpoint, "--query", "scoring_uri", "-o", "tsv").stdout.strip()
    for python in pythons:
        r = httpx.post(uri, json={"data": trained[1]}, timeout=30, headers={
            "authorization": f"Bearer {key}", "azureml-model-deployment": "py" + python.replace(".", "")})
        assert r.status_code == 200, r.text
        assert r.json()["python"].startswith(python + ".")
        assert r.json()["predictions"] == pytest.approx(trained[2])


def test_a_missing_python_under_strict_is_one_line_and_changes_nothing(tmp_path, trained, az_env):
    work = sample_dir(tmp_path, trained, "3.9")
    assert fleet(az_env, "server", "configure", "--python-policy", "strict", "-o", "none").returncode == 0
    fleet(az_env, "online-endpoint", "create", "--name", "strict-ep", "-o", "none")
    r = fleet(az_env, "online-deployment", "create", "--name", "blue", "--endpoint", "strict-ep",
              "-f", str(work / "blue-deployment.yml"))
    assert r.returncode == 2   # refused input, as az's usage errors
    error = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "asks for Python 3.9, which is not installed" in error[0]
    assert "looked in: uv's discovery" in error[0] and "python_policy strict" in error[0]
    assert json.loads(fleet(az_env, "online-deployment", "list", "-e", "strict-ep").stdout) == []


def test_a_missing_python_by_default_builds_on_the_nearest_with_a_warning(tmp_path, trained, az_env):
    work = sample_dir(tmp_path, trained, "3.9")
    nearest = installed_pythons()[0]
    fleet(az_env, "online-endpoint", "create", "--name", "nearest-ep", "-o", "none")
    r = fleet(az_env, "online-deployment", "create", "--name", "blue", "--endpoint", "nearest-ep",
              "-f", str(work / "blue-deployment.yml"), "-o", "none")
    assert r.returncode == 0, r.stderr
    assert "warning: environment CliV2AnonymousEnvironment" in r.stderr and "Python 3.9 is not installed" in r.stderr
    answer = json.loads(fleet(az_env, "online-endpoint", "invoke", "-n", "nearest-ep",
                              "--request-file", str(work / "sample-request.json")).stdout)
    assert answer["python"].startswith(nearest + ".")
    ref = fleet(az_env, "online-deployment", "show", "-n", "blue", "-e", "nearest-ep", "--query", "environment",
                "-o", "tsv").stdout.strip()
    shown = json.loads(fleet(az_env, "environment", "show", "--name", ref.split(":")[0],
                             "--version", ref.split(":")[1], "-o", "json").stdout)
    assert "Python 3.9 is not installed" in shown["warning"]


def test_local_endpoints_answer_loopback_clients_without_a_key(tmp_path, trained, az_env):
    work = sample_dir(tmp_path, trained, f"{sys.version_info.major}.{sys.version_info.minor}")
    bash(work, LOCAL_ENDPOINT, az_env)
    assert json.loads((work / "curl-answer.json").read_text())["predictions"] == pytest.approx(trained[2])
    uri = (work / "scoring-uri.txt").read_text().strip()
    relayed = httpx.post(uri, json={"data": trained[1]}, headers={"x-forwarded-for": "203.0.113.9"}, timeout=30)
    assert relayed.status_code == 401   # a proxy on this machine relays others: they need the key
    fleet(az_env, "online-endpoint", "create", "--name", "keyed", "-f", str(work / "endpoint.yml"), "-o", "none")
    fleet(az_env, "online-deployment", "create", "--name", "blue", "--endpoint", "keyed",
          "-f", str(work / "blue-deployment.yml"), "-o", "none")
    keyed = uri.rsplit("/endpoints/", 1)[0] + "/endpoints/keyed/score"
    assert httpx.post(keyed, json={"data": trained[1]}, timeout=30).status_code == 401


MULTIMODEL_DEPLOYMENT = """$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: minimal-multimodel
endpoint_name: {{ENDPOINT_NAME}}
model:
  name: minimal-multimodel
  path: models
code_configuration:
  code: code
  scoring_script: minimal-multimodel-score.py
environment:
  name: minimal-multimodel
  image: {{ACR_NAME}}.azurecr.io/azureml-examples/minimal-multimodel:1
instance_type: Standard_DS3_v2
instance_count: 1
"""

MULTIMODEL_SCORE = '''import json
import os
from pathlib import Path

import joblib
import pandas as pd

models = None


def init():
    global models
    model_dir = Path(os.getenv("AZUREML_MODEL_DIR")) / "models"
    models = {m[:-4]: joblib.load(model_dir / m) for m in os.listdir(model_dir)}


def run(data):
    data = json.loads(data)
    return pd.DataFrame(models[data["model"]].predict(pd.DataFrame(data["data"]))).to_json()
'''

MULTIMODEL = SCRIPT_HEAD + """
export ENDPOINT_NAME=endpt-mm-$RANDOM
export ACR_NAME=$(az ml workspace show --query container_registry -o tsv | cut -d'/' -f9-)
sed -e "s/{{ENDPOINT_NAME}}/$ENDPOINT_NAME/g" -e "s/{{ACR_NAME}}/$ACR_NAME/g" deployment.yml > deployment.yml_
az ml online-endpoint create -n $ENDPOINT_NAME
az ml online-deployment create -e $ENDPOINT_NAME -f deployment.yml_ --all-traffic
KEY=$(az ml online-endpoint get-credentials -n $ENDPOINT_NAME --query primaryKey -o tsv)
SCORING_URL=$(az ml online-endpoint show -n $ENDPOINT_NAME --query scoring_uri -o tsv)
curl -sf -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" -d @iris-request.json $SCORING_URL \\
    > iris-answer.json
az ml online-endpoint delete -y -n $ENDPOINT_NAME
"""


def test_an_image_that_is_not_azure_runs_on_the_default_environment(tmp_path, az_env):
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.tree import DecisionTreeClassifier
    X, y = load_iris(return_X_y=True, as_frame=True)
    (tmp_path / "models").mkdir()
    joblib.dump(DecisionTreeClassifier(random_state=0).fit(X.values, y), tmp_path / "models" / "iris.sav")
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "minimal-multimodel-score.py").write_text(MULTIMODEL_SCORE)
    (tmp_path / "deployment.yml").write_text(MULTIMODEL_DEPLOYMENT)
    (tmp_path / "iris-request.json").write_text(json.dumps({"model": "iris", "data": X.values[[0, 149]].tolist()}))
    p = bash(tmp_path, MULTIMODEL, az_env)
    assert "is not one of Azure's inference images" in p.stderr and "runs on the default environment" in p.stderr
    assert json.loads(json.loads((tmp_path / "iris-answer.json").read_text())) == {"0": {"0": 0, "1": 2}}
    # the strict policy refuses it, in one line, before anything is written
    fleet(az_env, "server", "configure", "--python-policy", "strict", "-o", "none")
    fleet(az_env, "server", "restart", "-o", "none")   # settings apply at the next start
    (tmp_path / "strict.yml").write_text(MULTIMODEL_DEPLOYMENT.replace("{{ENDPOINT_NAME}}", "strict-mm")
                                         .replace("{{ACR_NAME}}", "myacr"))
    fleet(az_env, "online-endpoint", "create", "-n", "strict-mm", "-o", "none")
    r = fleet(az_env, "online-deployment", "create", "-f", "strict.yml", cwd=tmp_path)
    assert r.returncode == 2 and "python_policy strict" in r.stderr


KUBERNETES_ENDPOINT = """$schema: https://azuremlschemas.azureedge.net/latest/kubernetesOnlineEndpoint.schema.json
name: my-endpoint
compute: azureml:inferencecompute
auth_mode: Key
tags:
  tag1: endpoint-tag1-value
"""

# The managed sample's deployment as the Kubernetes example writes it (its own schema and settings).
KUBERNETES_DEPLOYMENT = DEPLOYMENT_YAML.replace("managedOnline", "kubernetesOnline").replace(
    "name: blue\n", "name: {name}\ntype: kubernetes\n").replace(
    "instance_type: Standard_DS3_v2\ninstance_count: 1\n", "") + """\
request_settings:
  request_timeout_ms: 3000
  max_queue_wait_ms: 3000
resources:
  requests:
    cpu: "0.1"
    memory: "0.1Gi"
  limits:
    cpu: "0.2"
    memory: "800Mi"
tags:
  tag1: deployment-tag1-value
instance_count: 1
scale_settings:
  type: default
"""

KUBERNETES = SCRIPT_HEAD + """
export ENDPOINT_NAME=endpt-k8s-$RANDOM
az ml online-endpoint create --name $ENDPOINT_NAME -f kubernetes-endpoint.yml
az ml online-deployment create --name blue --endpoint $ENDPOINT_NAME -f kubernetes-blue-deployment.yml --all-traffic
az ml online-deployment update --name blue --endpoint $ENDPOINT_NAME --set instance_count=2
az ml online-deployment create --name green --endpoint $ENDPOINT_NAME -f kubernetes-green-deployment.yml
az ml online-endpoint show -n $ENDPOINT_NAME --query traffic > traffic.json
az ml online-endpoint invoke --name $ENDPOINT_NAME --deployment green --request-file sample-request.json \\
    > green-answer.json
ENDPOINT_KEY=$(az ml online-endpoint get-credentials -n $ENDPOINT_NAME -o tsv --query primaryKey)
SCORING_URI=$(az ml online-endpoint show -n $ENDPOINT_NAME -o tsv --query scoring_uri)
curl -sf --request POST "$SCORING_URI" --header "Authorization: Bearer $ENDPOINT_KEY" \\
    --header 'Content-Type: application/json' --header "azureml-model-deployment: green" \\
    --data @sample-request.json > curl-answer.json
az ml online-endpoint update --name $ENDPOINT_NAME --traffic "blue=90 green=10"
az ml online-endpoint update --name $ENDPOINT_NAME --traffic "blue=0 green=100"
az ml online-deployment show --name green --endpoint $ENDPOINT_NAME > green.json
az ml online-deployment delete --name blue --endpoint $ENDPOINT_NAME --yes --no-wait
az ml online-endpoint delete --name $ENDPOINT_NAME --yes --no-wait
"""


@RAY_GROUP
def test_the_kubernetes_script_runs_on_a_ray_compute_of_the_name_it_references(tmp_path, trained, az_env):
    """The Kubernetes example names `compute: azureml:inferencecompute`; here that is a Ray compute."""
    from modelfleet import Fleet
    from modelfleet.backends.ray import cluster as ray_cluster
    work = sample_dir(tmp_path, trained, f"{sys.version_info.major}.{sys.version_info.minor}")
    (work / "kubernetes-endpoint.yml").write_text(KUBERNETES_ENDPOINT)
    for name in ("blue", "green"):
        (work / f"kubernetes-{name}-deployment.yml").write_text(KUBERNETES_DEPLOYMENT.format(name=name))
    with Fleet() as f:
        f.computes.create("inferencecompute", num_cpus=2)
        compute = compute_row(f, "inferencecompute")
        try:
            bash(work, KUBERNETES, az_env)
        finally:
            f.server.stop()
            ray_cluster.stop_local(compute["temp_dir"])
    for name in ("green", "curl"):
        assert json.loads((work / f"{name}-answer.json").read_text())["predictions"] == pytest.approx(trained[2])
    assert json.loads((work / "traffic.json").read_text()) == {"blue": 100}
    green = json.loads((work / "green.json").read_text())
    assert green["provisioning_state"] == "Succeeded"
    assert all(r["compute"] == "inferencecompute" for r in green["replicas"])


TRAIN_LIGHTGBM = """
import sys
import lightgbm as lgb
import numpy as np
X, y, out = np.load(sys.argv[1]), np.load(sys.argv[2]), sys.argv[3]
booster = lgb.train({"objective": "multiclass", "num_class": 3, "verbose": -1, "num_threads": 1},
                    lgb.Dataset(X, label=y), num_boost_round=5)
booster.save_model(out + "/model.lgb")
np.save(out + "/expected.npy", booster.predict(X[[0, 149]]))
"""

LIGHTGBM_MLMODEL = """artifact_path: model
flavors:
  lightgbm:
    data: model.lgb
    lgb_version: 4.6.0
    model_class: lightgbm.basic.Booster
  python_function:
    data: model.lgb
    env: conda.yaml
    loader_module: mlflow.lightgbm
    python_version: 3.12.1
signature:
  inputs: '[{"name": "sepal_length", "type": "double"}, {"name": "sepal_width", "type": "double"},
    {"name": "petal_length", "type": "double"}, {"name": "petal_width", "type": "double"}]'
"""

LIGHTGBM_CONDA = """channels:
- conda-forge
dependencies:
- python=3.12
- pip
- pip:
  - mlflow-skinny==3.18.0
  - lightgbm==4.6.0
  - pandas==3.1.1
  - numpy==2.2.6
name: mlflow-env
"""

NCD_DEPLOYMENT = """$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: lightgbm-deployment
endpoint_name: my-endpoint
model:
  name: mir-sample-lightgbm-ncd-model
  version: 3
  path: lightgbm-iris/model
  type: mlflow_model
instance_type: Standard_DS3_v2
instance_count: 1
"""


def test_a_no_code_model_whose_flavour_the_server_lacks_gets_its_own_environment(tmp_path, az_env):
    """Azure's no-code LightGBM example: the server has no lightgbm; the model's conda.yaml is built."""
    from sklearn.datasets import load_iris
    assert importlib.util.find_spec("lightgbm") is None, "this test needs a server without lightgbm"
    X, y = load_iris(return_X_y=True)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    (tmp_path / "train.txt").write_text("lightgbm==4.6.0\nnumpy==2.2.6\n")
    assert fleet(az_env, "environment", "create", "--name", "lgb-train", "--requirements",
                 str(tmp_path / "train.txt"), "-o", "none").returncode == 0
    built = fleet(az_env, "environment", "build", "--name", "lgb-train", "--version", "1", "-o", "json")
    assert built.returncode == 0, built.stderr[-2000:]
    model = tmp_path / "lightgbm-iris" / "model"
    model.mkdir(parents=True)
    trained = subprocess.run([json.loads(built.stdout)["python"], "-c", TRAIN_LIGHTGBM, str(tmp_path / "X.npy"),
                              str(tmp_path / "y.npy"), str(model)], capture_output=True, text=True, timeout=300)
    assert trained.returncode == 0, trained.stderr
    expected = np.load(model / "expected.npy")
    (model / "expected.npy").unlink()
    (model / "MLmodel").write_text(LIGHTGBM_MLMODEL)
    (model / "conda.yaml").write_text(LIGHTGBM_CONDA)
    (tmp_path / "lightgbm-deployment.yaml").write_text(NCD_DEPLOYMENT)
    columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    (tmp_path / "sample-request-lightgbm.json").write_text(json.dumps(
        {"input_data": {"columns": columns, "data": X[[0, 149]].tolist(), "index": [0, 1]}}))
    fleet(az_env, "online-endpoint", "create", "--name", "endpt-ncd", "-o", "none")
    r = fleet(az_env, "online-deployment", "create", "--name", "lightgbm-deployment", "--endpoint", "endpt-ncd",
              "-f", "lightgbm-deployment.yaml", "-o", "none", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "used because the server lacks lightgbm" in r.stderr
    answer = json.loads(fleet(az_env, "online-endpoint", "invoke", "--name", "endpt-ncd", "--deployment",
                              "lightgbm-deployment", "--request-file", "sample-request-lightgbm.json",
                              cwd=tmp_path).stdout)
    assert np.allclose(answer, expected)
    ref = fleet(az_env, "online-deployment", "show", "-n", "lightgbm-deployment", "-e", "endpt-ncd",
                "--query", "environment", "-o", "tsv").stdout.strip()
    shown = json.loads(fleet(az_env, "environment", "show", "--name", ref.split(":")[0], "--version",
                             ref.split(":")[1], "-o", "json").stdout)
    assert shown["source"]["because"] == "lightgbm" and shown["interpreter"]["version"].startswith("3.12.")
