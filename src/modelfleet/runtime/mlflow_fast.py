"""The fast path (runtime/fast_path.py) for MLflow models of the sklearn flavour.

MLflow's pyfunc checks a request's columns against the model's signature, builds a DataFrame and
calls the scikit-learn model's `predict`. Where every input the signature names is a double (or
there is no signature) and the pyfunc calls `predict`, a request of rows of numbers, as many as the
model takes, is what that check lets through unchanged: such rows go to the fast path as a float64
matrix. Any other request goes through the pyfunc as before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable


def _why_not(pyfunc_model) -> str | None:
    meta = pyfunc_model.metadata
    flavors = getattr(meta, "flavors", None) or {}
    if "sklearn" not in flavors:
        return f"an MLflow model of the {', '.join(k for k in flavors if k != 'python_function') or 'pyfunc'} " \
               "flavour (the fast path serves the sklearn flavour)"
    predict_fn = flavors.get("python_function", {}).get("predict_fn", "predict")
    if predict_fn != "predict":
        return f"its pyfunc calls {predict_fn}, not predict"
    sig = getattr(meta, "signature", None)
    if sig is None or sig.inputs is None:
        return None
    if sig.inputs.is_tensor_spec():
        kinds = {str(getattr(s.type, "kind", "")) + str(getattr(s.type, "itemsize", "")) for s in sig.inputs.inputs}
        return None if kinds == {"f8"} else "its signature takes tensors other than float64"
    types = {getattr(s.type, "name", str(s.type)) for s in sig.inputs.inputs}
    return None if types == {"double"} else f"its signature has {', '.join(sorted(types - {'double'}))} columns " \
                                              "(MLflow's type checks are kept)"


def choose(pyfunc_model, model_dir: Path, model_root: Path, setting, rows_of) -> tuple[Callable | None, dict, int | None]:
    """(the fast `predict` for a float64 matrix or None, the status, the number of columns it takes);
    `model_dir` is the model version's stored folder, `model_root` the one holding its MLmodel."""
    from . import fast_path
    if setting is False:
        return None, fast_path.Status("off", "fast_path: false in the deployment").to_dict(), None
    why = _why_not(pyfunc_model)
    if why is not None:
        if setting == "required":
            raise fast_path.Refused(f"fast_path: required, but the model is {why}")
        return None, fast_path.Status("off", f"no fast path: {why}").to_dict(), None
    model = pyfunc_model.get_raw_model()
    conf = pyfunc_model.metadata.flavors["sklearn"]
    model_file = model_root / conf.get("pickled_model", "model.pkl")
    outputs, status = fast_path.choose(model, fast_path.model_outputs(model, False), setting, model_dir,
                                       model_file, rows_of)
    return outputs["predict"], status.to_dict(), getattr(model, "n_features_in_", None)
