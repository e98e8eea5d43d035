"""Which package an MLflow model's flavour needs, and whether this server has it.

A no-code MLflow model is loaded by its `python_function` loader module (`mlflow.lightgbm`), which
imports the flavour's library. When the server's interpreter lacks it, the deployment runs on the
environment the model logged for itself (environments.py, `for_mlflow_flavour`), as Azure does.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ..schema import yaml_files

# MLflow loader modules whose library is named otherwise (the rest: mlflow.NAME needs NAME)
LOADER_PACKAGES = {"mlflow.sklearn": "sklearn", "mlflow.pytorch": "torch", "mlflow.onnx": "onnxruntime",
                   "mlflow.h2o": "h2o", "mlflow.paddle": "paddle", "mlflow.pmdarima": "pmdarima",
                   "mlflow.johnsnowlabs": "sparknlp", "mlflow.spark": "pyspark"}


def _root(model_dir: Path) -> Path | None:
    found = sorted(model_dir.rglob("MLmodel"))
    return found[0].parent if found else None


def loader_package(model_dir: Path) -> str | None:
    """The importable package the model's pyfunc loader needs (None: MLflow alone, or no MLmodel)."""
    root = _root(model_dir)
    if root is None:
        return None
    try:
        doc = yaml_files.load_one(root / "MLmodel")
    except Exception:   # noqa: BLE001 - an unreadable MLmodel is the loader's to report
        return None
    loader = ((doc.get("flavors") or {}).get("python_function") or {}).get("loader_module")
    if not isinstance(loader, str) or not loader.startswith("mlflow.") or loader.startswith("mlflow.pyfunc"):
        return None   # a python_model's own code: what it imports is its requirements' business
    return LOADER_PACKAGES.get(loader, loader.split(".")[1])


def missing_package(model_dir: Path) -> str | None:
    """The flavour's package when this interpreter cannot import it, else None."""
    package = loader_package(model_dir)
    if package is None or importlib.util.find_spec(package) is not None:
        return None
    return package


def logged_conda(model_dir: Path) -> bool:
    root = _root(model_dir)
    return root is not None and (root / "conda.yaml").is_file()
