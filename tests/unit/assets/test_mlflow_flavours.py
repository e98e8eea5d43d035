"""Which package an MLflow model's flavour needs, read from its MLmodel (mlflow_flavours.py)."""

from __future__ import annotations

import pytest

from modelfleet.assets import mlflow_flavours


def mlmodel(tmp_path, loader: str):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "MLmodel").write_text(f"flavors:\n  python_function:\n    loader_module: {loader}\n")
    return tmp_path


@pytest.mark.parametrize("loader, package", [("mlflow.lightgbm", "lightgbm"), ("mlflow.sklearn", "sklearn"),
                                             ("mlflow.pytorch", "torch"), ("mlflow.pyfunc.model", None),
                                             ("mlflow.pyfunc.loaders.code_model", None), ("my_loader", None)])
def test_the_flavour_package_is_read_from_the_loader_module(tmp_path, loader, package):
    assert mlflow_flavours.loader_package(mlmodel(tmp_path, loader)) == package


def test_a_package_this_interpreter_has_is_not_missing(tmp_path):
    assert mlflow_flavours.missing_package(mlmodel(tmp_path, "mlflow.sklearn")) is None


def test_a_package_this_interpreter_lacks_is_missing(tmp_path):
    assert mlflow_flavours.missing_package(mlmodel(tmp_path, "mlflow.modelfleet_no_such_flavour")) == \
        "modelfleet_no_such_flavour"
