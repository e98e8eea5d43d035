"""What a model takes and gives, as Open Inference Protocol tensor metadata.

Computed once when a replica loads its model, from what the model itself says: the ONNX graph,
the MLflow signature, scikit-learn's `n_features_in_` / `feature_names_in_` and `classes_`, or
what a scoring script declares in a module-level `v2_metadata = {"inputs": [...], "outputs": [...]}`.
A tensor is {"name", "datatype", "shape"} with -1 for a dimension of any size. A model that says
nothing has no tensors listed: `{"inputs": [], "outputs": []}`.
"""

from __future__ import annotations

from typing import Any

V2_TYPES = ("BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
            "FP16", "FP32", "FP64", "BYTES")


def v2_datatype(dtype) -> str:
    """The V2 datatype of a numpy dtype (strings and objects are BYTES)."""
    kind, bits = dtype.kind, dtype.itemsize * 8
    if kind == "b":
        return "BOOL"
    if kind in "iu":
        return f"{'INT' if kind == 'i' else 'UINT'}{bits}"
    if kind == "f":
        return f"FP{min(bits, 64)}"
    return "BYTES"


def tensor(name: str, datatype: str, shape: list[int]) -> dict:
    return {"name": name, "datatype": datatype, "shape": list(shape)}


def empty() -> dict:
    return {"inputs": [], "outputs": []}


# -- scikit-learn ------------------------------------------------------------------------------

def sklearn(model) -> dict:
    import numpy as np
    names = getattr(model, "feature_names_in_", None)
    n = getattr(model, "n_features_in_", None)
    if names is not None:  # fitted on named columns: one column tensor per feature
        inputs = [tensor(str(c), "FP64", [-1]) for c in names]
    elif n is not None:
        inputs = [tensor("input-0", "FP64", [-1, int(n)])]
    else:
        inputs = []
    classes = getattr(model, "classes_", None)
    n_outputs = getattr(model, "n_outputs_", 1)
    out_shape = [-1] if n_outputs == 1 else [-1, int(n_outputs)]
    predict_type = v2_datatype(np.asarray(classes).dtype) if classes is not None else "FP64"
    outputs = [tensor("predict", predict_type, out_shape)]
    if hasattr(model, "predict_proba") and classes is not None and n_outputs == 1:
        outputs.append(tensor("predict_proba", "FP64", [-1, len(classes)]))
    return {"inputs": inputs, "outputs": outputs}


# -- ONNX --------------------------------------------------------------------------------------

_ONNX = {"tensor(float)": "FP32", "tensor(double)": "FP64", "tensor(float16)": "FP16", "tensor(bool)": "BOOL",
         "tensor(string)": "BYTES", **{f"tensor({t}{b})": f"{t.upper()}{b}" for t in ("int", "uint")
                                       for b in (8, 16, 32, 64)}}


def onnx_tensors(args) -> list[dict]:
    """ONNX graph inputs or outputs that are tensors (a ZipMap's sequence of maps is not)."""
    return [tensor(a.name, _ONNX[a.type], [d if isinstance(d, int) and d >= 0 else -1 for d in (a.shape or [])])
            for a in args if a.type in _ONNX]


def onnx(session) -> dict:
    return {"inputs": onnx_tensors(session.get_inputs()), "outputs": onnx_tensors(session.get_outputs())}


# -- MLflow ------------------------------------------------------------------------------------

_MLFLOW = {"boolean": "BOOL", "integer": "INT32", "long": "INT64", "float": "FP32", "double": "FP64",
           "string": "BYTES", "binary": "BYTES", "datetime": "BYTES"}


def _mlflow_schema(schema, default_name: str) -> list[dict]:
    if schema is None:
        return []
    out = []
    for i, spec in enumerate(schema.inputs):
        name = spec.name or (default_name if len(schema.inputs) == 1 else f"{default_name}-{i}")
        if schema.is_tensor_spec():
            out.append(tensor(name, v2_datatype(spec.type), [-1 if d is None else int(d) for d in spec.shape]))
        else:
            out.append(tensor(name, _MLFLOW.get(getattr(spec.type, "name", str(spec.type)), "BYTES"), [-1]))
    return out


def mlflow(pyfunc_model) -> dict:
    sig = getattr(pyfunc_model.metadata, "signature", None)
    if sig is None:
        return empty()
    return {"inputs": _mlflow_schema(sig.inputs, "input"), "outputs": _mlflow_schema(sig.outputs, "predict")}


# -- declared by a scoring script --------------------------------------------------------------

def declared(value: Any, where: str) -> dict:
    """A script's `v2_metadata`, checked so a mistake fails the replica's start, not a request."""
    if not isinstance(value, dict) or set(value) - {"inputs", "outputs"}:
        raise ValueError(f"{where}: v2_metadata must be a dict with 'inputs' and 'outputs' lists")
    out = empty()
    for key in ("inputs", "outputs"):
        items = value.get(key, [])
        if not isinstance(items, list):
            raise ValueError(f"{where}: v2_metadata[{key!r}] must be a list of tensors")
        for i, t in enumerate(items):
            ok = (isinstance(t, dict) and isinstance(t.get("name"), str) and t["name"]
                  and t.get("datatype") in V2_TYPES and isinstance(t.get("shape"), list)
                  and all(isinstance(d, int) and not isinstance(d, bool) and d >= -1 for d in t["shape"]))
            if not ok:
                raise ValueError(f"{where}: v2_metadata[{key!r}][{i}] must be {{name, datatype (a V2 type), "
                                 "shape (whole numbers, -1 for any size)}")
            out[key].append(tensor(t["name"], t["datatype"], t["shape"]))
    return out
