"""Open Inference Protocol v2 (KServe/Triton REST) inside a replica: tensors in, named outputs out.

Requests are checked as the protocol says: every input has a name, a shape of whole numbers
(no -1 in a request), a datatype, and data (JSON, or raw bytes by Triton's binary tensor
extension) that fits both; a value out of range for its datatype is a 400, not a model error.
Outputs are the model's own (runtime/signatures.py), selected by name; an unknown name is refused.
JSON or binary per output (`binary_data_output`, or `parameters.binary_data` on an output).

The payload the gateway passes in is a 4-byte JSON header length (0: the body is all JSON) and
the HTTP body; an OK answer is framed the same way, so the gateway can set
Inference-Header-Content-Length on an answer that carries binary tensors.
"""

from __future__ import annotations

import math
import struct
import sys

import orjson

from . import protocol as p
from .loaders import BadInput
from .user_errors import describe_error, user_traceback
from .signatures import v2_datatype

_NP = {"BOOL": "bool", "INT8": "int8", "INT16": "int16", "INT32": "int32", "INT64": "int64",
       "UINT8": "uint8", "UINT16": "uint16", "UINT32": "uint32", "UINT64": "uint64",
       "FP16": "float16", "FP32": "float32", "FP64": "float64", "BYTES": "object"}
_LEN = struct.Struct("<I")  # BYTES elements in binary form: a 4-byte little-endian length, then the bytes


# -- request -----------------------------------------------------------------------------------

def _shape(t: dict, i: int) -> list[int]:
    shape = t.get("shape")
    if not isinstance(shape, list) or not shape:
        raise BadInput(f"inputs[{i}].shape must be a non-empty list of whole numbers")
    for d in shape:
        if isinstance(d, bool) or not isinstance(d, int):
            raise BadInput(f"inputs[{i}].shape {shape}: {d!r} is not a whole number")
        if d < 0:
            raise BadInput(f"inputs[{i}].shape {shape}: a request's shape cannot have {d} (only metadata uses -1)")
    return shape


def _whole_numbers(data, datatype: str, where: str):
    """JSON numbers as an INT/UINT tensor, each checked: whole, and in the datatype's range."""
    import numpy as np
    info = np.iinfo(_NP[datatype])
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError, OverflowError):
        raise BadInput(f"{where}.data is not a regular list of {datatype} values") from None
    if arr.dtype.kind in "iu":  # the common case, checked as a whole
        if arr.size and (arr.min() < info.min or arr.max() > info.max):
            bad = arr.min() if arr.min() < info.min else arr.max()
            raise BadInput(f"{where}: {bad} is out of range for {datatype} ({info.min} to {info.max})")
        return arr.astype(_NP[datatype]).reshape(-1)
    values = _flat(data)  # floats, numbers past 64 bits (JSON gives those as floats), or a mix
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise BadInput(f"{where}: {datatype} data must be whole numbers")
        if isinstance(v, float) and not v.is_integer():
            raise BadInput(f"{where}: {datatype} data cannot hold fractions ({v})")
        if not info.min <= v <= info.max:
            raise BadInput(f"{where}: {v:.0f} is out of range for {datatype} ({info.min} to {info.max})")
    return np.array([int(v) for v in values], dtype=_NP[datatype])


def _check_range(arr, datatype: str, where: str):
    """`arr` (as JSON gave it) as a BOOL or FP `datatype`, refusing values it cannot hold."""
    import numpy as np
    kind = arr.dtype.kind
    if datatype == "BOOL":
        if kind != "b":
            raise BadInput(f"{where}: BOOL data must be true or false")
        return arr
    if kind not in "iuf":
        raise BadInput(f"{where}: {datatype} data must be numbers")
    with np.errstate(over="ignore"):
        out = arr.astype(_NP[datatype])
    if arr.size and np.isfinite(arr).all() and not np.isfinite(out).all():
        raise BadInput(f"{where}: a value is out of range for {datatype}")
    return out


def _flat(data) -> list:
    out, stack = [], [data]
    while stack:
        x = stack.pop()
        if isinstance(x, list):
            stack.extend(reversed(x))
        else:
            out.append(x)
    return out


def _from_json(data, datatype: str, count: int, where: str):
    import numpy as np
    if not isinstance(data, list):
        raise BadInput(f"{where}.data must be a list")
    if datatype == "BYTES":
        values = _flat(data)
        if not all(isinstance(v, str) for v in values):
            raise BadInput(f"{where}: BYTES data must be strings")
        arr = np.empty(len(values), dtype=object)
        arr[:] = values
    elif datatype.startswith(("INT", "UINT")):
        arr = _whole_numbers(data, datatype, where)
    else:
        try:
            arr = np.asarray(data).reshape(-1)
        except (ValueError, TypeError, OverflowError):
            raise BadInput(f"{where}.data is not a regular list of {datatype} values") from None
        arr = _check_range(arr, datatype, where)
    if arr.size != count:
        raise BadInput(f"{where}: data has {arr.size} values; its shape needs {count}")
    return arr


def _from_binary(buf: memoryview, datatype: str, count: int, where: str):
    import numpy as np
    if datatype == "BYTES":
        values, pos = [], 0
        while pos < len(buf):
            if pos + 4 > len(buf):
                raise BadInput(f"{where}: binary BYTES data ends inside an element's length")
            (n,) = _LEN.unpack_from(buf, pos)
            if pos + 4 + n > len(buf):
                raise BadInput(f"{where}: binary BYTES element of {n} bytes runs past its data")
            values.append(bytes(buf[pos + 4:pos + 4 + n]))
            pos += 4 + n
        if len(values) != count:
            raise BadInput(f"{where}: binary data holds {len(values)} BYTES elements; its shape needs {count}")
        arr = np.empty(count, dtype=object)
        arr[:] = values
        return arr
    dtype = np.dtype(_NP[datatype]).newbyteorder("<")
    if len(buf) != count * dtype.itemsize:
        raise BadInput(f"{where}: binary_data_size {len(buf)} does not fit shape and datatype "
                       f"({count} x {dtype.itemsize} bytes)")
    return np.frombuffer(buf, dtype=dtype).astype(dtype.newbyteorder("="))


def parse_request(payload: bytes) -> tuple[dict, list[tuple[str, object]]]:
    """The request document and its input tensors, [(name, array in its shape)]."""
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
    if doc.get("parameters") is not None and not isinstance(doc["parameters"], dict):
        raise BadInput("parameters must be an object")
    tensors = []
    for i, t in enumerate(inputs):
        where = f"inputs[{i}]"
        if not isinstance(t, dict) or not isinstance(t.get("name"), str) or not t["name"]:
            raise BadInput(f"{where} needs name, shape, datatype and data")
        shape = _shape(t, i)
        datatype = str(t.get("datatype", "")).upper()
        if datatype not in _NP:
            raise BadInput(f"{where}.datatype {t.get('datatype')!r} is not a V2 datatype ({', '.join(_NP)})")
        params = t.get("parameters")
        if params is not None and not isinstance(params, dict):
            raise BadInput(f"{where}.parameters must be an object")
        size = (params or {}).get("binary_data_size")
        count = math.prod(shape)
        if size is not None:
            if "data" in t:
                raise BadInput(f"{where} has both data and binary_data_size")
            if isinstance(size, bool) or not isinstance(size, int) or size < 0 or size > len(binary):
                raise BadInput(f"{where}: binary_data_size {size!r} does not fit the request")
            arr, binary = _from_binary(binary[:size], datatype, count, where), binary[size:]
        elif "data" in t:
            arr = _from_json(t["data"], datatype, count, where)
        else:
            raise BadInput(f"{where} needs data (or parameters.binary_data_size)")
        tensors.append((t["name"], arr.reshape(shape)))
    if len(binary):
        raise BadInput(f"{len(binary)} bytes of binary data after the last input")
    return doc, tensors


def parse_response(payload: bytes) -> list[tuple[str, object]]:
    """The output tensors of a framed answer (what `response` wrote), [(name, array in its shape)]:
    read back by data collection, with the request's rules."""
    hlen = int.from_bytes(payload[:4], "big")
    doc = orjson.loads(payload[4:4 + hlen] if hlen else payload[4:])
    header = orjson.dumps({"inputs": doc.get("outputs") if isinstance(doc, dict) else None})
    binary = payload[4 + hlen:] if hlen else b""
    return parse_request((len(header) if hlen else 0).to_bytes(4, "big") + header + binary)[1]


# -- inputs to the model -----------------------------------------------------------------------

def _fits(shape: tuple, declared: list[int]) -> bool:
    if len(declared) == 1 and len(shape) == 2 and shape[1] == 1:
        return shape[0] == declared[0] or declared[0] == -1   # a column given as [N, 1]
    return len(shape) == len(declared) and all(d in (-1, s) for s, d in zip(shape, declared))


def model_inputs(tensors: list, declared: list[dict]) -> list[tuple[str, object]]:
    """Request tensors in the order the model takes them. With one declared input (or none)
    names are free; with several they are matched by name, or one tensor holds them all side
    by side."""
    if len(declared) > 1:
        by_name = dict(tensors)
        names = [d["name"] for d in declared]
        unknown = [n for n in by_name if n not in names]
        if not unknown:
            missing = [n for n in names if n not in by_name]
            if missing:
                raise BadInput(f"input {missing[0]!r} is missing; the model takes {', '.join(names)}")
            tensors = [(n, by_name[n]) for n in names]
        elif not (len(tensors) == 1 and tensors[0][1].ndim == 2 and tensors[0][1].shape[1] == len(declared)):
            raise BadInput(f"unknown input {unknown[0]!r}: the model takes {', '.join(names)}")
        else:
            return tensors
    for (name, arr), d in zip(tensors, declared):
        if not _fits(arr.shape, d["shape"]):
            raise BadInput(f"input {name!r} has shape {list(arr.shape)}; the model takes {d['shape']}")
    return tensors


def _columns(tensors: list) -> list:
    cols = [arr.reshape(arr.shape[0], -1) if arr.ndim != 2 else arr for _, arr in tensors]
    if len({c.shape[0] for c in cols}) > 1:
        raise BadInput("inputs disagree on the batch size (their first dimension)")
    return cols


def wanted_outputs(doc: dict, available: list[str]) -> list[tuple[str, bool]]:
    """(name, as binary) for each output to answer: the requested ones, or all of them."""
    params = doc.get("parameters") or {}
    binary_default = params.get("binary_data_output") is True
    requested = doc.get("outputs")
    if requested is None or requested == []:
        return [(n, binary_default) for n in available]
    if not isinstance(requested, list):
        raise BadInput("outputs must be a list of {name}")
    out, seen = [], set()
    for i, o in enumerate(requested):
        if not isinstance(o, dict) or not isinstance(o.get("name"), str):
            raise BadInput(f"outputs[{i}] needs a name")
        if o["name"] in seen:  # as Triton: each output is asked for once
            raise BadInput(f"outputs[{i}]: output {o['name']!r} is requested more than once")
        seen.add(o["name"])
        if o["name"] not in available:
            raise BadInput(f"unknown output {o['name']!r}: the model's outputs are {', '.join(available)}")
        p = o.get("parameters") or {}
        if not isinstance(p, dict):
            raise BadInput(f"outputs[{i}].parameters must be an object")
        out.append((o["name"], p.get("binary_data", binary_default) is True))
    return out


# -- response ----------------------------------------------------------------------------------

def _json_data(arr) -> list:
    if arr.dtype.kind in "OSU":
        return [x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x) for x in arr.reshape(-1).tolist()]
    return arr.reshape(-1).tolist()


def _binary_data(arr, datatype: str) -> bytes:
    import numpy as np
    if datatype == "BYTES":
        parts = []
        for x in arr.reshape(-1).tolist():
            b = x if isinstance(x, bytes) else str(x).encode()
            parts += [_LEN.pack(len(b)), b]
        return b"".join(parts)
    return np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()


def response(results: list, binary: dict[str, bool], doc: dict, model_name: str, model_version: str) -> bytes:
    """The framed answer: 4-byte JSON length (0 when all JSON), the JSON, then binary tensors."""
    import numpy as np
    outputs, blobs = [], []
    for name, arr in results:
        arr = np.asarray(arr)
        datatype = v2_datatype(arr.dtype)
        out = {"name": name, "datatype": datatype, "shape": list(arr.shape)}
        if binary.get(name):
            blob = _binary_data(arr, datatype)
            out["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            out["data"] = _json_data(arr)
        outputs.append(out)
    body = {"model_name": model_name, "model_version": model_version, "outputs": outputs}
    if doc.get("id") is not None:
        body["id"] = str(doc["id"])
    header = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return b"\0\0\0\0" + header
    return len(header).to_bytes(4, "big") + header + b"".join(blobs)


def _error(code: str, message: str) -> bytes:
    return orjson.dumps({"error": {"code": code, "message": message}})


def _print(exc: BaseException) -> None:
    sys.stderr.write(user_traceback(exc))


def handle(scorer, payload: bytes, model_name: str, model_version: str, report=_print) -> tuple[int, bytes]:
    """(frame kind, answer) for one V2 infer request: OK with the framed answer, BAD_REQUEST or
    MODEL_ERROR with a JSON error; `report` gets the exception a model raised (for the log)."""
    metadata = getattr(scorer, "metadata", None) or {"inputs": [], "outputs": []}
    try:
        doc, tensors = parse_request(payload)
        wanted = wanted_outputs(doc, [t["name"] for t in metadata["outputs"]] or ["predict"])
        names = [n for n, _ in wanted]
        declared = metadata["inputs"]
        inputs = model_inputs(tensors, declared)
        by_name = len(declared) > 1 and hasattr(scorer, "infer_named") and len(inputs) == len(declared)
        cols = None if by_name else _columns(inputs)
    except BadInput as e:
        return p.BAD_REQUEST, _error("bad_request", str(e))
    try:
        results = scorer.infer_named(dict(inputs), names) if by_name else scorer.infer(cols, names)
    except BadInput as e:
        return p.BAD_REQUEST, _error("bad_request", str(e))
    except Exception as e:  # the model raised
        report(e)
        return p.MODEL_ERROR, _error("model_error", describe_error(e))
    return p.OK, response(results, dict(wanted), doc, model_name, model_version)
