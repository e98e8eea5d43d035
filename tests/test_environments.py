"""Environments end to end: versions in the registry, builds with uv from the real package index,
replicas that run an environment's interpreter beside replicas on the server's own, rollouts
between environments under load, failures that change nothing, MLflow's own requirements
(--env-manager), and gc."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import sklearn

from modelfleet import Fleet
from modelfleet.domain.errors import AlreadyExists, DeploymentFailed, FleetError, InvalidInput

from .conftest import IRIS_ROWS, fleet_in
from .helpers import Load, run_cli, scoring_code, wait_until, write

OLD_SKLEARN = "1.5.2"   # has wheels for Python 3.11; the server runs another version (asserted below)

SCORE_PY = """
import glob, json, os, sys
import joblib, sklearn

def init():
    global model
    model = joblib.load(glob.glob(os.path.join(os.environ["AZUREML_MODEL_DIR"], "**", "*.joblib"), recursive=True)[0])

def run(raw_data):
    try:
        import tabulate   # a package the server does not have
        tab = tabulate.__version__
    except ImportError:
        tab = None
    return {"sklearn": sklearn.__version__, "tabulate": tab, "prefix": sys.prefix,
            "predictions": model.predict(json.loads(raw_data)["data"]).tolist()}
"""

# Trains with whatever scikit-learn the interpreter running it has.
TRAIN = ("import sys, joblib; from sklearn.datasets import load_iris; from sklearn.linear_model import "
         "LogisticRegression; X, y = load_iris(return_X_y=True); "
         "joblib.dump(LogisticRegression(max_iter=1000).fit(X, y), sys.argv[1])")

# What the MLflow model below logs as its requirements: mlflow-skinny and pandas (what loading a
# pyfunc model takes; `mlflow==` would also need companion packages the index may not have for
# that version) at the versions constraints.txt locks for the server, and a package it lacks.
MLFLOW_MODEL_REQUIREMENTS = ("mlflow-skinny==3.18.0", "pandas==3.1.1", "tabulate==0.9.0")

MLFLOW_MODEL = """
import mlflow.pyfunc
from mlflow.models import set_model


class TabulateVersion(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        import tabulate
        return [tabulate.__version__] * len(model_input)


set_model(TabulateVersion())
"""


# -- the registry (the API in process, no build) -----------------------------------------------------------

def test_versions_are_immutable_and_numbered(api_fleet):
    envs = api_fleet.environments
    one = envs.create("sk", requirements=["scikit-learn==1.5.2"])
    assert (one.version, one.content["requirements"], one.lock) == ("1", ["scikit-learn==1.5.2"], None)
    assert envs.create("sk", requirements=["scikit-learn==1.5.2", "tabulate"]).version == "2"
    assert envs.get("sk").version == "2"  # latest
    with pytest.raises(AlreadyExists, match="environment sk:1 already exists with different packages"):
        envs.create("sk", version="1", requirements=["tabulate"])
    assert envs.create("sk", version="1", requirements=["scikit-learn==1.5.2"], exist_ok=True).sha256 == one.sha256
    envs.archive("sk", "2")
    assert [e.version for e in envs.list("sk")] == ["1"] and envs.get("sk").version == "1"
    assert envs.resolve("azureml:sk:2").archived  # still usable by its version


@pytest.mark.slow
def test_the_azure_examples_environment_files_create_environments(fleet_home, tmp_path):
    """An environment YAML as Azure's examples write it (an image plus a conda file pinning an
    older Python): created, with a notice for the image; building it is refused in one line."""
    assets = tmp_path / "cli" / "assets" / "environment"
    write(assets / "conda-yamls" / "pydata.yml", """
        name: pydata-example
        channels:
          - conda-forge
        dependencies:
          - python=3.8
          - pip
          - pip:
            - numpy==1.21.2
            - pandas==1.3.0
            - scikit-learn==0.24.2
    """)
    write(assets / "docker-image-plus-conda.yaml", """
        $schema: https://azuremlschemas.azureedge.net/latest/environment.schema.json
        name: docker-image-plus-conda-example
        image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04
        conda_file: conda-yamls/pydata.yml
        description: Environment created from a Docker image plus Conda environment.
    """)
    model_env = write(tmp_path / "model-1" / "environment" / "conda.yaml", """
        name: model-env
        channels:
          - conda-forge
        dependencies:
          - python=3.9
          - numpy=1.23.5
          - pip=23.0.1
          - scikit-learn=1.2.2
          - scipy=1.10.1
          - pip:
            - inference-schema[numpy-support]
            - joblib
    """)
    r = run_cli("environment", "create", "-f", str(assets / "docker-image-plus-conda.yaml"), "-o", "json")
    assert "field 'image' is kept but not used" in r.stderr
    env = json.loads(r.stdout)
    assert (env["name"], env["version"], env["python"]) == ("docker-image-plus-conda-example", "1", "==3.8.*")
    assert env["image"] == "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04"
    assert env["content"]["requirements"] == ["numpy==1.21.2", "pandas==1.3.0", "scikit-learn==0.24.2"]
    r = run_cli("environment", "create", "--name", "model-1", "--conda-file", str(model_env), "--image",
                "mcr.microsoft.com/azureml/minimal-ubuntu20.04-py38-cpu-inference:latest", "-o", "json")
    env = json.loads(r.stdout)
    assert env["content"]["requirements"] == ["numpy==1.23.5.*", "scikit-learn==1.2.2.*", "scipy==1.10.1.*",
                                              "inference-schema[numpy-support]", "joblib"]
    with Fleet() as f, pytest.raises(InvalidInput) as refused:
        f.server.configure(python_policy="strict")   # fleet server configure --python-policy strict
        f.server.stop()                              # which applies at the next start
        f.environments.build("docker-image-plus-conda-example:1")  # refused by the server before any download
    assert refused.value.message.startswith(
        "environment docker-image-plus-conda-example:1 asks for Python 3.8, which is not installed as a supported "
        "version (3.10-3.13) (looked in: uv's discovery")


@pytest.mark.slow
def test_conda_only_packages_and_bad_files_are_refused_in_one_line(fleet_home, tmp_path):
    conda = write(tmp_path / "gpu.yml", """
        dependencies:
          - python=3.11
          - cudatoolkit=11.8
          - pytorch
    """)
    r = run_cli("environment", "create", "--name", "gpu", "--conda-file", str(conda), code=2)
    assert r.stderr.strip() == (f"error: {conda}: dependencies[1]: 'cudatoolkit' is a conda-only package (PyPI has "
                                "no such package) and environments are installed from PyPI: remove it, or name the "
                                "PyPI package that provides it under pip:")
    r = run_cli("environment", "create", "--name", "img", "--image", "python:3.11", code=2)
    assert "image 'python:3.11' is not one of Azure's inference images" in r.stderr
    reqs = write(tmp_path / "requirements.txt", "-e ./mypackage\n")
    r = run_cli("environment", "create", "--name", "local", "--requirements", str(reqs), code=2)
    assert r.stderr.strip() == f"error: {reqs}: editable installs ('-e ./mypackage') cannot be part of an environment"
    assert run_cli("environment", "list", "-o", "json").stdout.strip() == "[]"


# -- builds and replicas (real builds from the package index) -------------------------------------

@dataclass
class World:
    fleet: Fleet
    home: Path
    python: str       # sk152:1's interpreter
    code: dict        # the score.py above


@pytest.fixture(scope="module")
def world(tmp_path_factory, models_dir):
    """One server; environment sk152:1 (scikit-learn 1.5.2 and tabulate, built once); endpoint
    `versions` with deployment `env` (a model pickled with 1.5.2, in sk152:1) and `default` (a
    model pickled with the server's scikit-learn, on the server's interpreter)."""
    assert sklearn.__version__ != OLD_SKLEARN
    tmp = tmp_path_factory.mktemp("environments")
    with fleet_in(tmp / "home") as f:
        f.environments.create("sk152", requirements=[f"scikit-learn=={OLD_SKLEARN}", "tabulate==0.9.0"])
        python = f.environments.build("sk152:1")["python"]
        (tmp / "iris152").mkdir()
        subprocess.run([python, "-c", TRAIN, str(tmp / "iris152" / "model.joblib")], check=True,
                       env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
        f.models.register("iris152", tmp / "iris152", "1")
        f.models.register("iris", models_dir / "iris", "1")
        code = scoring_code(tmp / "code", SCORE_PY)
        f.online_endpoints.create("versions")
        f.online_deployments.create("env", "versions", "iris152:1", code_configuration=code,
                                    environment="azureml:sk152:1")
        f.online_deployments.create("default", "versions", "iris:1", code_configuration=code)
        yield World(f, tmp / "home", python, code)


def ask(world: World, deployment: str) -> dict:
    return world.fleet.online_endpoints.invoke("versions", {"data": IRIS_ROWS}, deployment_name=deployment)


def replica_pids(world: World, deployment: str) -> list[int]:
    return sorted(r["pid"] for r in world.fleet.online_deployments.get(deployment, "versions")["replicas"])


@pytest.mark.slow
def test_a_model_pickled_with_another_scikit_learn_serves_beside_the_server_interpreter(world):
    env, default = ask(world, "env"), ask(world, "default")
    assert (env["sklearn"], env["tabulate"]) == (OLD_SKLEARN, "0.9.0")
    assert (default["sklearn"], default["tabulate"]) == (sklearn.__version__, None)
    assert importlib.util.find_spec("tabulate") is None  # the server lacks it; score.py in sk152 imports it
    assert env["predictions"] == default["predictions"] == [0, 2]
    shown = world.fleet.environments.get("sk152", "1").to_dict()
    assert shown["built"] and env["prefix"] == shown["path"] == str(Path(world.python).parents[1])
    assert world.fleet.online_deployments.get("env", "versions")["environment"] == "sk152:1"


@pytest.mark.slow
def test_replicas_fork_from_a_warm_parent_of_their_environment(world):
    f = world.fleet
    f.online_deployments.update("env", "versions", instance_count=2)
    try:
        # forked, not started: a replica keeps its warm parent's command line (and, re-parented to
        # the server that reaps it, outlives that parent)
        env_replicas = [psutil.Process(pid).cmdline()[:3] for pid in replica_pids(world, "env")]
        assert env_replicas == [[world.python, "-m", "modelfleet.runtime.zygote"]] * 2
        default = psutil.Process(replica_pids(world, "default")[0]).cmdline()[:3]
        assert default[1:] == ["-m", "modelfleet.runtime.zygote"] and default[0] != world.python
    finally:
        f.online_deployments.update("env", "versions", instance_count=1)


@pytest.mark.slow
def test_a_built_environment_is_reused_as_it_is(world):
    lines: list[str] = []
    again = world.fleet.environments.build("sk152:1", progress=lines.append)
    assert again["cached"] and again["python"] == world.python
    assert not any("install" in line.lower() for line in lines)


@pytest.mark.slow
def test_an_update_that_changes_only_the_environment_rolls_out_with_zero_failed_requests(world):
    f = world.fleet
    f.environments.create("sk152", version="2", requirements=[f"scikit-learn=={OLD_SKLEARN}", "tabulate==0.8.10"])
    r = run_cli("environment", "build", "--name", "sk152", "--version", "2")  # progress streamed to the CLI
    assert "sk152:2: Resolved" in r.stderr and "+ tabulate==0.8.10" in r.stderr
    before = replica_pids(world, "env")
    ep = f.online_endpoints.get("versions")
    key = f.online_endpoints.get_keys("versions")["primaryKey"]
    with Load(ep["scoring_uri"], key, json.dumps({"data": IRIS_ROWS}).encode(),
              headers={"azureml-model-deployment": "env"}) as load:
        f.online_deployments.update("env", "versions", environment="azureml:sk152:2")
        served = load.result.ok
        wait_until(lambda: load.result.ok > served + 20)
    assert load.result.failed == []
    after = ask(world, "env")
    assert (after["sklearn"], after["tabulate"]) == (OLD_SKLEARN, "0.8.10")
    assert not set(replica_pids(world, "env")) & set(before)


@pytest.mark.slow
def test_a_broken_environment_fails_clearly_and_changes_nothing(world, tmp_path):
    f = world.fleet
    before = f.online_deployments.get("env", "versions")
    pids = replica_pids(world, "env")
    reqs = write(tmp_path / "requirements.txt", f"scikit-learn=={OLD_SKLEARN}\nmodelfleet-no-such-package-zzq==1.0\n")
    run_cli("environment", "create", "--name", "broken", "--requirements", str(reqs))
    r = run_cli("online-deployment", "update", "--name", "env", "--endpoint", "versions", "--environment",
                "azureml:broken:1", code=1)
    assert r.stderr.strip().splitlines()[-1] == ("error: environment broken:1: package "
                                                 "'modelfleet-no-such-package-zzq' was not found in the package index")
    now = f.online_deployments.get("env", "versions")
    assert (now["environment"], now["provisioning_state"]) == (before["environment"], "Succeeded")
    assert replica_pids(world, "env") == pids

    # it builds, but its replicas cannot start (no scikit-learn): rolled back, the old ones serve on
    f.environments.create("nosklearn", requirements=["tabulate==0.9.0"])
    with pytest.raises(DeploymentFailed, match="failed to start: ModuleNotFoundError: No module named"):
        f.online_deployments.update("env", "versions", environment="nosklearn:1")
    now = f.online_deployments.get("env", "versions")
    assert (now["environment"], now["provisioning_state"]) == (before["environment"], "Failed")
    assert replica_pids(world, "env") == pids
    assert ask(world, "env")["sklearn"] == OLD_SKLEARN


@pytest.fixture(scope="module")
def mlflow_env(world, tmp_path_factory) -> dict:
    """Endpoint `mlflow-env`: an MLflow model that needs tabulate, deployed once on the server's
    interpreter (`local`) and once in the environment its own requirements make (`with-uv`).
    The model's requirements are pinned here (MLflow would pin the server's own mlflow, whatever
    the index serves that day) so the build resolves the same on any day."""
    import mlflow.pyfunc
    f, tmp = world.fleet, tmp_path_factory.mktemp("mlflow-env")
    mlflow.pyfunc.save_model(str(tmp / "model"), python_model=str(write(tmp / "code.py", MLFLOW_MODEL)),
                             pip_requirements=list(MLFLOW_MODEL_REQUIREMENTS))
    write(tmp / "model" / "requirements.txt", "\n".join(MLFLOW_MODEL_REQUIREMENTS) + "\n")
    f.models.register("tabulate-version", tmp / "model", "1")
    f.online_endpoints.create("mlflow-env")
    f.online_deployments.create("local", "mlflow-env", "tabulate-version:1")   # the server's interpreter
    return f.online_deployments.create("with-uv", "mlflow-env", "tabulate-version:1", env_manager="uv",
                                       all_traffic=True)


@pytest.mark.slow
def test_env_manager_builds_the_environment_an_mlflow_model_logged(world, mlflow_env):
    f = world.fleet
    with pytest.raises(FleetError, match="No module named 'tabulate'"):
        f.online_endpoints.invoke("mlflow-env", {"inputs": [[1]]}, deployment_name="local")
    assert mlflow_env["env_manager"] == "uv" and mlflow_env["environment"].startswith("CliV2AnonymousEnvironment:")
    assert f.online_endpoints.invoke("mlflow-env", {"inputs": [[1], [2]]}) == ["0.9.0", "0.9.0"]
    requirements = f.environments.resolve(mlflow_env["environment"]).content["requirements"]
    assert set(MLFLOW_MODEL_REQUIREMENTS) <= set(requirements)


@pytest.mark.slow
def test_gc_removes_the_builds_nothing_uses_and_says_what_it_freed(world, mlflow_env):
    f = world.fleet
    f.environments.create("spare", requirements=["tabulate==0.8.10"])
    f.environments.build("spare:1")
    used = {d["environment"] for d in f.online_deployments.list() if d["environment"]}
    unused = [e for e in f.environments.list() if e.ref not in used and e.to_dict()["built"]]
    assert "spare:1" in {e.ref for e in unused}
    assert json.loads(run_cli("environment", "gc", "-o", "json").stdout)["removed"] == []  # named: kept
    for e in unused:
        f.environments.archive(e.name, e.version)
    report = json.loads(run_cli("environment", "gc", "-o", "json").stdout)
    gone = sorted(e.to_dict()["path"] for e in unused)
    assert sorted(r["path"] for r in report["removed"]) == gone
    assert report["freed_bytes"] > 0 and not any(Path(p).exists() for p in gone)
    # their warm parents went with them; the environments in use still serve
    pythons = {str(Path(p) / "bin" / "python") for p in gone}
    wait_until(lambda: not [p for p in psutil.process_iter(["cmdline"]) if (p.info["cmdline"] or [""])[0] in pythons])
    assert ask(world, "env")["sklearn"] == OLD_SKLEARN
    assert f.online_endpoints.invoke("mlflow-env", {"inputs": [[1]]}) == ["0.9.0"]
