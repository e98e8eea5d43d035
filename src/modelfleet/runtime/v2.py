"""Open Inference Protocol v2 (KServe/Triton REST, JSON tensors) <-> model rows."""

from __future__ import annotations

import orjson

from .loaders import BadInput

_DTYPES = {"b": "BOOL", "i": "INT64", "u": "UINT64", "f": "FP64"}
_NP = {"BOOL": "bool", "INT8": "int8", "INT16": "int16", "INT32": "int32", "INT64": "int64",
       "UINT8": "uint8", "UINT16": "uint16", "UINT32": "uint32", "UINT64": "uint64",
       "FP16": "float16", "FP32": "float32", "FP64": "float64", "BYTES": "object"}


def request_rows(body: bytes) -> tuple[list, dict]:
    """The rows a V2 infer request carries, and the request document (for id and outputs)."""
    import numpy as np
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise BadInput(f"request body is not valid JSON: {e}") from None
    inputs = doc.get("inputs") if isinstance(doc, dict) else None
    if not isinstance(inputs, list) or not inputs:
        raise BadInput('a V2 request needs a non-empty "inputs" list')
    columns = []
    for i, t in enumerate(inputs):
        if not isinstance(t, dict) or "data" not in t or "shape" not in t:
            raise BadInput(f"inputs[{i}] needs name, shape, datatype and data")
        if t.get("parameters", {}).get("binary_data_size") is not None:
            raise BadInput(f"inputs[{i}]: binary tensor data is not supported; send JSON tensors")
        dtype = _NP.get(str(t.get("datatype", "FP64")).upper())
        if dtype is None:
            raise BadInput(f"inputs[{i}].datatype {t.get('datatype')!r} is not a V2 datatype")
        try:
            arr = np.asarray(t["data"], dtype=dtype).reshape([int(s) for s in t["shape"]])
        except (ValueError, TypeError) as e:
            raise BadInput(f"inputs[{i}]: data does not fit shape {t['shape']}: {e}") from None
        columns.append(arr.reshape(arr.shape[0], -1) if arr.ndim != 2 else arr)
    matrix = columns[0] if len(columns) == 1 else np.hstack(columns)
    return matrix.tolist(), doc


def response(result, doc: dict, model_name: str, model_version: str) -> bytes:
    import numpy as np
    arr = np.asarray(result)
    name = "predict"
    wanted = doc.get("outputs")
    if isinstance(wanted, list) and wanted and isinstance(wanted[0], dict) and wanted[0].get("name"):
        name = wanted[0]["name"]
    datatype = _DTYPES.get(arr.dtype.kind, "BYTES")
    data = arr.reshape(-1).tolist() if datatype != "BYTES" else [str(x) for x in arr.reshape(-1)]
    out = {"model_name": model_name, "model_version": model_version,
           "outputs": [{"name": name, "datatype": datatype, "shape": list(arr.shape), "data": data}]}
    if doc.get("id") is not None:
        out["id"] = doc["id"]
    return orjson.dumps(out)
