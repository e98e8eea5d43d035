"""Choosing an environment's Python (interpreters.py) and naming Azure's curated environments
(curated.py): pure logic, with the machine's interpreters given."""

from __future__ import annotations

import pytest

from modelfleet.domain import curated
from modelfleet.envbuild.builder import Interpreter
from modelfleet.domain.errors import InvalidInput
from modelfleet.envbuild.interpreters import Policy

SERVER = Interpreter("/opt/py311/bin/python3.11", "3.11.7", "linux-x86_64")
PY310 = Interpreter("/opt/py310/bin/python3.10", "3.10.13", "linux-x86_64")
PY312 = Interpreter("/opt/py312/bin/python3.12", "3.12.1", "linux-x86_64")


class GivenPolicy(Policy):
    """A policy over the interpreters given, instead of those discovery finds on this machine."""

    def __init__(self, mode: str, found: list[Interpreter]):
        super().__init__(mode, server=SERVER)
        self._given = found

    def found(self, everywhere: bool = True) -> list[Interpreter]:
        return self._given


@pytest.mark.parametrize("pin, chosen", [(None, SERVER), ("==3.11.*", SERVER), ("==3.11.4", SERVER),
                                         ("==3.12.*", PY312), ("==3.10.*", PY310), (">=3.12", PY312)])
def test_the_pinned_python_is_found_and_the_server_own_preferred(pin, chosen):
    choice = GivenPolicy("strict", [PY312, SERVER, PY310]).choose(pin, "environment e:1")
    assert choice.interpreter == chosen and choice.note is None


def test_strict_refuses_a_missing_python_in_one_line_naming_it_and_where_it_looked():
    with pytest.raises(InvalidInput) as refused:
        GivenPolicy("strict", [PY312, SERVER]).choose("==3.9.*", "environment pydata:1")
    message = refused.value.message
    assert "\n" not in message
    assert message.startswith("environment pydata:1 asks for Python 3.9, which is not installed")
    assert "looked in: uv's discovery" in message and ".pyenv/versions" in message
    assert "pin one of 3.11, 3.12" in message


def test_nearest_builds_on_the_nearest_minor_version_and_says_so():
    choice = GivenPolicy("nearest", [PY312, PY310]).choose("==3.13.*", "environment e:1")
    assert choice.interpreter == PY312
    assert "Python 3.13 is not installed" in choice.note and "built on Python 3.12.1" in choice.note


def test_an_unknown_policy_is_refused():
    with pytest.raises(InvalidInput, match="python_policy 'lenient'"):
        Policy("lenient")


@pytest.mark.parametrize("ref, name", [
    ("azureml://registries/azureml/environments/sklearn-1.5/labels/latest", "sklearn-1.5"),
    ("azureml://registries/azureml/environments/sklearn-1.0/versions/3", "sklearn-1.0"),
    ("azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu@latest", "sklearn-1.0"),
    ("azureml:AzureML-sklearn-1.5@latest", "sklearn-1.5"),
    ("AzureML-lightgbm-3.3:1", "lightgbm-3.3"),
    ("azureml:AzureML-minimal-ubuntu20.04-py38-cpu-inference:12", "minimal-py312-inference"),
])
def test_azure_curated_references_map_to_the_catalog(ref, name):
    assert curated.lookup(ref).name == name


def test_other_references_are_not_curated_and_unknown_curated_ones_are_refused():
    assert curated.lookup("azureml:sklearn-152:1") is None
    assert curated.lookup("my-env@latest") is None
    with pytest.raises(InvalidInput, match="'acpt-pytorch-2.8-cuda12.6' is not in modelfleet's catalog"):
        curated.lookup("azureml://registries/azureml/environments/acpt-pytorch-2.8-cuda12.6/labels/latest")


def test_azure_inference_images_are_told_from_others():
    assert curated.is_inference_image("mcr.microsoft.com/azureml/minimal-py312-inference:latest")
    assert not curated.is_inference_image("myacr.azurecr.io/azureml-examples/minimal-multimodel:1")
