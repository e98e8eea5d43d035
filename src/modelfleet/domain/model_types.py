"""The kinds of model modelfleet serves, named once."""

from __future__ import annotations

# Served without code: the runtime has a loader for each (runtime/loaders.py).
NO_CODE_TYPES = ("sklearn", "onnx", "mlflow")
# "custom" needs a scoring script (init/run).
MODEL_TYPES = ("custom", *NO_CODE_TYPES)
# Azure ML's type names, mapped onto ours (None: detected from the model's files).
AZURE_MODEL_TYPES = {"custom_model": None, "triton_model": None, "mlflow_model": "mlflow"}


def detect_type(files: list[dict]) -> str:
    names = [f["path"].rsplit("/", 1)[-1].lower() for f in files]
    if "mlmodel" in names:
        return "mlflow"
    if any(n.endswith(".onnx") for n in names):
        return "onnx"
    if any(n.endswith((".joblib", ".pkl", ".pickle")) for n in names):
        return "sklearn"
    return "custom"


# The deployment setting `fast_path` (how a replica calls a scikit-learn model, runtime/fast_path.py):
# true (a verified ONNX graph, else scikit-learn unchecked), false, or "required".
FAST_PATH_DEFAULT = True
