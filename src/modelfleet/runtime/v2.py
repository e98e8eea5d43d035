"""Open Inference Protocol v2 (KServe/Triton REST, JSON tensors) <-> model rows."""

from __future__ import annotations

import orjson

from .loaders import BadInput

_DTYPES = {"b": "BOOL", "i": "INT64", "u": "UINT64", "f": "FP64"}
_NP = {"BOOL": "bool", "INT8": "int8", "INT16": "int16", "INT32": "int32", "INT64": "int64",
       "UINT8": "uint8", "UINT16": "uint16", "UINT32": "uint32", "UINT64": "uint64",
       "FP16": "float16", "FP32": "float32", "FP64": "float64", "BYTES": "object"}


def request_rows(payload: bytes) -> tuple[list, dict]:
    """The rows a V2 infer request carries, and the request document (for id and outputs).

    `payload` is a 4-byte JSON header length (0 when the body is all JSON) and the HTTP body:
    the binary tensor extension puts raw tensor bytes after the JSON header.
    """
    import numpy as np
    hlen = int.from_bytes(payload[:4], "big")
    if hlen > len(payload) - 4:
        raise BadInput("Inference-Header-Content-Length is larger than the body")
    body = payload[4:4 + hlen] if hlen else payload[4:]
    binary = memoryview(payload)[4 + hlen:] if hlen else memoryview(b"")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise BadInput(f"request body is not valid JSON: {e}") from None
    inputs = doc.get("inputs") if isinstance(doc, dict) else None
    if not isinstance(inputs, list) or not inputs:
        raise BadInput('a V2 request needs a non-empty "inputs" list')
    columns = []
    for i, t in enumerate(inputs):
        params = t.get("parameters") if isinstance(t, dict) else None
        if params is not None and not isinstance(params, dict):
            raise BadInput(f"inputs[{i}].parameters must be an object")
        size = params.get("binary_data_size") if params else None
        if not isinstance(t, dict) or ("data" not in t and size is None) or not isinstance(t.get("shape"), list) \
                or not t["shape"]:
            raise BadInput(f"inputs[{i}] needs name, a non-empty shape, datatype and data")
        dtype = _NP.get(str(t.get("datatype", "FP64")).upper())
        if dtype is None:
            raise BadInput(f"inputs[{i}].datatype {t.get('datatype')!r} is not a V2 datatype")
        try:
            if size is not None:
                if dtype == "object" or not isinstance(size, int) or size < 0 or size > len(binary):
                    raise BadInput(f"inputs[{i}]: binary_data_size {size!r} does not fit the request")
                data, binary = np.frombuffer(binary[:size], dtype=dtype), binary[size:]
            else:
                data = t["data"]
            arr = np.asarray(data, dtype=dtype).reshape([int(s) for s in t["shape"]])
        except (ValueError, TypeError) as e:
            raise BadInput(f"inputs[{i}]: data does not fit shape {t['shape']}: {e}") from None
        columns.append(arr.reshape(arr.shape[0], -1) if arr.ndim != 2 else arr)
    if len({c.shape[0] for c in columns}) > 1:
        raise BadInput("inputs disagree on the batch size (their first dimension)")
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
