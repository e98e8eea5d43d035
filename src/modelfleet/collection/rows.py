"""A request's rows, by collection: what a deployment's payload collection writes of a request it
answered, entry by entry (columns.py builds the common shapes a batch at a time, to the same
tables). Columns are named by the model's signature (scikit-learn's `feature_names_in_`, an MLflow
or ONNX signature, as the replica reported them), else by position ("0", "1", ... as pandas names
the columns of a list of lists); V2 tensors by their names. Every row carries the request id as
`correlationid` and the time it was answered as `time`.
"""

from __future__ import annotations

import orjson

from ..runtime.loaders import rows_in
from ..runtime.v2 import parse_request, parse_response

INPUTS, OUTPUTS, REQUEST, RESPONSE = "model_inputs", "model_outputs", "request", "response"
# an entry's collections, as the bits of one small int (no tuple per entry)
BITS = {INPUTS: 1, OUTPUTS: 2, REQUEST: 4, RESPONSE: 8}


def collections_of(bits: int) -> tuple[str, ...]:
    return tuple(name for name, bit in BITS.items() if bits & bit)


def convert(entry: tuple) -> dict[str, list[dict]]:
    """One request's rows, by collection: `entry` is (time, request id, body, answer, metadata,
    captured headers as a dict or None, collection names, V2 header length or None). The way for
    batches that are not of the common shapes (columns.py)."""
    t, rid, body, answer, metadata, captured, wanted, v2 = entry
    out: dict[str, list[dict]] = {}
    base = {"correlationid": rid, "time": t}
    if captured:
        base.update({f"header_{k}": v for k, v in captured.items()})
    for name in wanted:
        if name == REQUEST:
            out[name] = [{**base, "data": (body[:v2] if v2 else body).decode("utf-8", "replace")}]
        elif name == RESPONSE:
            out[name] = [{**base, "data": (_v2_json(answer) if v2 is not None else answer).decode("utf-8", "replace")}]
        elif name == INPUTS:
            rows = input_rows(body, metadata) if v2 is None else v2_input_rows(body, v2, metadata)
            out[name] = [{**base, **r} for r in rows]
        elif name == OUTPUTS:
            rows = output_rows(answer, metadata) if v2 is None else tensor_rows(parse_response(answer))
            out[name] = [{**base, **r} for r in rows]
    return out


def _v2_json(framed: bytes) -> bytes:
    hlen = int.from_bytes(framed[:4], "big")
    return framed[4:4 + hlen] if hlen else framed[4:]


def v2_input_rows(body: bytes, header_length: int, metadata) -> list[dict]:
    """A V2 request's rows. One input of several columns is named as a no-code request's rows are
    (by the model's features, else by position); several inputs each by its own name."""
    _, tensors = parse_request(header_length.to_bytes(4, "big") + body)
    if len(tensors) == 1 and tensors[0][1].ndim == 2 and tensors[0][1].shape[1] > 1:
        columns = tensors[0][1].shape[1]
        names = feature_names(metadata)
        names = names if len(names) == columns else [str(i) for i in range(columns)]
        return [dict(zip(names, row)) for row in _plain(tensors[0][1]).tolist()]
    return tensor_rows(tensors)


def tensor_rows(tensors: list) -> list[dict]:
    """Rows of V2 tensors (the first dimension is the batch): a tensor of one column is named by
    itself, one of several by its name and position (NAME_0, NAME_1, ...)."""
    columns: dict[str, list] = {}
    for name, arr in tensors:
        arr = _plain(arr.reshape(arr.shape[0], -1) if arr.ndim != 2 else arr)
        if arr.shape[1] == 1:
            columns[name] = arr[:, 0].tolist()
        else:
            columns.update({f"{name}_{i}": arr[:, i].tolist() for i in range(arr.shape[1])})
    n = min((len(v) for v in columns.values()), default=0)
    return [{k: v[i] for k, v in columns.items()} for i in range(n)]


def _plain(arr):
    """BYTES tensors as text, as a JSON request would have sent them."""
    if arr.dtype.kind != "O":
        return arr
    import numpy as np
    return np.vectorize(lambda x: x.decode("utf-8", "replace") if isinstance(x, bytes) else x, otypes=[object])(arr)


def input_rows(body: bytes, metadata) -> list[dict]:
    return named_rows(rows_in(orjson.loads(body)), feature_names(metadata))


def named_rows(rows: list, names: list[str]) -> list[dict]:
    out = []
    for row in rows:
        if isinstance(row, dict):
            out.append({str(k): v for k, v in row.items()})
        else:
            out.append({names[i] if i < len(names) else str(i): v for i, v in enumerate(row)})
    return out


def feature_names(metadata) -> list[str]:
    """Named input columns ([-1]-shaped tensors, one per feature), or none (by position)."""
    inputs = (metadata or {}).get("inputs") or []
    if inputs and all(len(t.get("shape", [])) == 1 for t in inputs):
        return [t["name"] for t in inputs]
    return []


def output_name(metadata) -> str:
    outputs = (metadata or {}).get("outputs") or []
    return outputs[0]["name"] if outputs else "predict"


def output_rows(answer: bytes, metadata) -> list[dict]:
    return answer_rows(predictions(orjson.loads(answer)), output_name(metadata))


def predictions(doc):
    """An answer's predictions: a list, or a dict (one row, or columns) when it holds none."""
    if isinstance(doc, dict):
        for key in ("predictions", "outputs", "result"):
            if key in doc:
                doc = doc[key]
                break
        else:
            return doc
    return doc if isinstance(doc, list) else [doc]


def answer_rows(doc, name: str) -> list[dict]:
    if isinstance(doc, dict):
        cols = {k: v for k, v in doc.items() if isinstance(v, list)}
        lengths = {len(v) for v in cols.values()}
        if cols and len(lengths) == 1:
            n = lengths.pop()
            return [{k: v[i] for k, v in cols.items()} for i in range(n)]
        return [doc]
    rows = []
    for v in doc:
        if isinstance(v, dict):
            rows.append(v)
        elif isinstance(v, list):
            rows.append({f"{name}_{i}": x for i, x in enumerate(v)})
        else:
            rows.append({name: v})
    return rows
