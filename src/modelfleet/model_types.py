"""The kinds of model modelfleet serves, named once."""

from __future__ import annotations

# Served without code: the runtime has a loader for each (runtime/loaders.py).
NO_CODE_TYPES = ("sklearn", "onnx", "mlflow")
# "custom" needs a scoring script (init/run).
MODEL_TYPES = ("custom", *NO_CODE_TYPES)
# Azure ML's type names, mapped onto ours (None: detected from the model's files).
AZURE_MODEL_TYPES = {"custom_model": None, "triton_model": None, "mlflow_model": "mlflow"}
# The deployment setting `fast_path` (how a replica calls a scikit-learn model, runtime/fast_path.py):
# true (a verified ONNX graph, else scikit-learn unchecked), false, or "required".
FAST_PATH_DEFAULT = True
