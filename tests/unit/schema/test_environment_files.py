"""What an environment asks for: conda files, requirements files and MLflow's environment files
read into PyPI requirements, the refusals (conda-only packages, another Python), and uv's errors
told in one line."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from modelfleet.envbuild.builder import Interpreter, bytes_only_in, disk_usage, explain
from modelfleet.schema.environment_files import (EnvironmentContent, conda_dependency, python_allows, read_conda,
                                                 read_mlflow_model, read_requirement_lines)
from modelfleet.domain.errors import InvalidInput, SpecError
from modelfleet.schema.documents import DeploymentSpec, EnvironmentSpec
from modelfleet.schema.validation import validate
from modelfleet.schema.wire import DeploymentBody, DeploymentRecord

DEPLOYMENT = {"name": "blue", "endpoint_name": "iris-ep", "model": "iris:1"}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


@pytest.mark.parametrize("dep, requirement", [
    ("numpy", "numpy"),
    ("numpy=1.23.5", "numpy==1.23.5.*"),     # conda's `=` is a prefix match
    ("numpy=1.23.*", "numpy==1.23.*"),
    ("numpy=1.2*", "numpy==1.2.*"),
    ("numpy==1.23.5", "numpy==1.23.5"),
    ("scipy>=1.10,<2", "scipy>=1.10,<2"),
    ("conda-forge::scikit-learn 1.2.*", "scikit-learn==1.2.*"),
    ("scikit-learn 1.2.2 py39h_0", "scikit-learn==1.2.2"),   # version, then a build string
    ("pytorch=2.1=py3.11_cpu_0", "torch==2.1.*"),            # renamed to its PyPI name
    ("py-xgboost", "xgboost"),
])
def test_conda_dependencies_become_pypi_requirements(dep, requirement):
    assert conda_dependency(dep, "conda.yaml")[1] == requirement


@pytest.mark.parametrize("dep", ["pip", "pip=23.0.1", "python"])
def test_conda_tools_are_not_installed(dep):
    assert conda_dependency(dep, "conda.yaml") is None


@pytest.mark.parametrize("dep", ["cudatoolkit=11.8", "libgcc-ng", "openssl", "_libgcc_mutex", "r-base=4.2"])
def test_conda_only_packages_are_refused_by_name(dep):
    name = dep.split("=")[0]
    with pytest.raises(SpecError) as refused:
        conda_dependency(dep, "env.yml: dependencies[3]")
    assert refused.value.message.startswith(f"env.yml: dependencies[3]: {name!r} is a conda-only package")


def test_a_conda_file_with_pip_packages_and_an_included_requirements_file(tmp_path):
    write(tmp_path / "extra.txt", "tabulate==0.9.0  # pinned\n--extra-index-url https://example.org/simple\n")
    content = read_conda({"name": "model-env", "channels": ["conda-forge"], "dependencies": [
        "python=3.11", "numpy=1.26", "pip", {"pip": ["scikit-learn == 1.5.2", "-r extra.txt"]}]},
        tmp_path, "conda.yaml")
    assert content == EnvironmentContent(("numpy==1.26.*", "scikit-learn==1.5.2", "tabulate==0.9.0"),
                                         ("--extra-index-url https://example.org/simple",), "==3.11.*", ("numpy",))


@pytest.mark.parametrize("doc, message", [
    ({"dependencies": "numpy"}, "conda.yaml: dependencies: expected a list"),
    ({"dependencies": [{"pip": "numpy"}]}, "conda.yaml: dependencies[0]: expected a conda package or a `pip:` list"),
    ({"dependencies": ["numpy|scipy"]}, "conda.yaml: dependencies[0]: cannot read conda dependency 'numpy|scipy' "
                                        "(use name, name=version or name>=version)"),
    ({"dependencies": [{"pip": ["numpy", "not a requirement!"]}]},
     "conda.yaml: dependencies[0].pip: line 2: 'not a requirement!' is not a requirement such as "
     "scikit-learn==1.5.2"),
    ({"dependencies": [{"pip": ["./my-package"]}]},
     "conda.yaml: dependencies[0].pip: local paths ('./my-package') cannot be part of an environment"),
    ({"dependencies": [{"pip": ["--trusted-host x"]}]},
     "conda.yaml: dependencies[0].pip: option '--trusted-host' is not supported in an environment "
     "(only -r, --index-url, --extra-index-url and --find-links)"),
])
def test_unreadable_conda_files_are_refused_in_one_line(doc, message):
    with pytest.raises(SpecError) as refused:
        read_conda(doc, None, "conda.yaml")
    assert refused.value.message == message


def test_the_content_hash_ignores_order_and_sees_the_python_pin():
    a = EnvironmentContent(("numpy", "tabulate"))
    assert a.sha256 == EnvironmentContent(("tabulate", "numpy")).sha256
    assert a.sha256 != EnvironmentContent(("numpy", "tabulate"), python="==3.11.*").sha256


@pytest.mark.parametrize("pin, allowed", [
    (None, True), ("==3.11.*", True), (">=3.8", True), ("==3.11.2", True),   # a patch release does not matter
    ("==3.9.*", False), ("<3.11", False), ("==3.12.1", False), (">=3.12", False),
])
def test_the_python_pin_is_checked_against_the_server_python(pin, allowed):
    assert python_allows(pin, "3.11.7") is allowed


def test_requirement_files_refuse_local_checkouts():
    with pytest.raises(SpecError, match="editable installs"):
        read_requirement_lines(["-e ."], None, "requirements.txt")
    with pytest.raises(SpecError, match="local paths"):
        read_requirement_lines(["pkg @ file:///home/me/pkg"], None, "requirements.txt")
    assert read_requirement_lines(["a==1 \\", "  ; python_version > '3'", "", "# b"], None, "r.txt")[0] == \
        ['a==1; python_version > "3"']


def test_mlflow_models_are_read_as_mlflow_env_managers_read_them(tmp_path):
    model = tmp_path / "model"
    write(model / "MLmodel", "flavors: {}\n")
    write(model / "requirements.txt", "mlflow==2.16.0\nscikit-learn==1.5.2\n")
    write(model / "python_env.yaml", "python: 3.11.4\nbuild_dependencies: [pip]\ndependencies:\n- -r requirements.txt\n")
    write(model / "conda.yaml", "dependencies:\n- python=3.11.4\n- pip:\n  - mlflow==2.16.0\n")
    uv = read_mlflow_model(tmp_path, "uv", "model m:1")
    assert (uv.requirements, uv.python) == (("mlflow==2.16.0", "scikit-learn==1.5.2"), "==3.11.4")
    assert read_mlflow_model(tmp_path, "conda", "model m:1").requirements == ("mlflow==2.16.0",)
    with pytest.raises(InvalidInput, match="model m:1: no MLmodel file"):
        read_mlflow_model(tmp_path / "model" / "nothing-here", "uv", "model m:1")


def test_environment_documents():
    env = validate(EnvironmentSpec, {"name": "pydata", "version": 1, "conda_file": "file:conda-yamls/pydata.yml",
                                     "image": "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04", "os_type": "linux"})
    assert (env.version, env.conda_file) == ("1", "conda-yamls/pydata.yml")
    assert env.notices("env.yml") == [
        "env.yml: field 'os_type' has no meaning on modelfleet; ignored",
        "env.yml: field 'image' is kept but not used: environments are virtualenvs built with uv from the conda "
        "file, not Docker images"]
    image = validate(EnvironmentSpec, {"name": "img", "image": "mcr.microsoft.com/azureml/minimal-py312-inference"})
    assert image.notices("env.yml") == []   # an image alone is what it maps to (curated.py), not a kept field
    with pytest.raises(SpecError, match="conda_file: required"):
        validate(EnvironmentSpec, {"name": "nothing"})
    with pytest.raises(SpecError, match="give conda_file or requirements, not both"):
        validate(EnvironmentSpec, {"name": "x", "conda_file": "a.yml", "requirements": ["b"]})


def test_deployment_environments():
    assert validate(DeploymentSpec, {**DEPLOYMENT, "environment": "azureml:sk:1"}).environment == "azureml:sk:1"
    inline = validate(DeploymentSpec, {**DEPLOYMENT, "environment": {"conda_file": "env.yml", "image": "x"}})
    assert inline.environment.conda_file == "env.yml" and inline.environment.name is None
    assert validate(DeploymentSpec, {**DEPLOYMENT, "env_manager": "local"}).env_manager is None
    curated = "azureml://registries/azureml/environments/sklearn-1.5/labels/latest"
    assert validate(DeploymentSpec, {**DEPLOYMENT, "environment": curated}).environment == curated
    assert validate(DeploymentSpec, {**DEPLOYMENT, "environment": {"image": "python:3.11"}}).environment.image
    for doc, message in [
        ({"environment": "sk:1", "env_manager": "uv"}, "give environment or env_manager, not both"),
        ({"environment": "azureml://registries/azureml/environments/acpt-pytorch-2.8-cuda12.6/labels/latest"},
         "environment: environment 'azureml://registries/azureml/environments/acpt-pytorch-2.8-cuda12.6/labels/"
         "latest': Azure's curated environment 'acpt-pytorch-2.8-cuda12.6' is not in modelfleet's catalog "
         "(sklearn-1.5, sklearn-1.0, lightgbm-3.3, minimal-py312-inference); create an environment with its "
         "packages instead (fleet environment create --conda-file ...)"),
        ({"env_manager": "pip"}, "env_manager: Input should be 'virtualenv', 'uv' or 'conda'"),
    ]:
        with pytest.raises(SpecError) as refused:
            validate(DeploymentSpec, {**DEPLOYMENT, **doc})
        assert refused.value.message == message
    with pytest.raises(SpecError, match="not both"):
        validate(DeploymentBody, {"model": "m:1", "environment": "sk:1", "env_manager": "uv"})
    # what the store keeps: the environment an env_manager derived, with the env_manager
    record = validate(DeploymentRecord, {"model": "m:1", "model_type": "mlflow", "model_sha256": "0" * 64,
                                         "environment": "CliV2AnonymousEnvironment:abc", "env_manager": "uv"})
    assert record.environment == "CliV2AnonymousEnvironment:abc"


def test_uv_failures_are_told_in_one_line_naming_the_package():
    it = Interpreter("/usr/bin/python3", "3.11.7", "linux-x86_64")
    missing = ["error: No solution found when resolving dependencies",
               "  cause: Because azureml-no-such-thing was not found in the package",
               "         registry and you require azureml-no-such-thing, we can conclude that your requirements "
               "are unsatisfiable."]
    assert explain(missing, "environment e:1", it) == \
        "environment e:1: package 'azureml-no-such-thing' was not found in the package index"
    assert explain(missing, "environment e:1", it, ("azureml-no-such-thing",)).endswith(
        "(it comes from the conda dependencies: conda-only packages cannot be installed here)")
    old = ["error: No solution found when resolving dependencies",
           "  cause: Because numpy==1.21.2 has no usable wheels and you require numpy==1.21.2, we can conclude "
           "that your requirements are unsatisfiable."]
    assert explain(old, "environment e:1", it) == ("environment e:1: numpy==1.21.2 has no wheel for Python 3.11 on "
                                                   "linux-x86_64 (environments install wheels only: no compiler runs "
                                                   "on the server)")
    assert explain(["error: Failed to fetch: `https://pypi.org/simple/numpy/`"], "environment e:1", it) == \
        "environment e:1: Failed to fetch: `https://pypi.org/simple/numpy/`"


def test_freed_bytes_count_only_files_nothing_else_links(tmp_path):
    cache, env = tmp_path / "cache", tmp_path / "env"
    cache.mkdir()
    env.mkdir()
    (cache / "shared.so").write_bytes(b"x" * 100_000)
    os.link(cache / "shared.so", env / "shared.so")  # as uv installs from its cache
    (env / "RECORD").write_bytes(b"y" * 50_000)
    assert 50_000 <= bytes_only_in([env]) < 100_000         # removing env leaves shared.so in the cache
    assert bytes_only_in([cache, env]) >= 150_000            # removing both frees it
    assert disk_usage([cache, env]) < disk_usage([cache]) + disk_usage([env])   # counted once, as du does
