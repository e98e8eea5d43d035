"""Payload collection: what a deployment receives and answers, with no code in the model.

The gateway hands each answered scoring request to the deployment's `PayloadCollector` (sampling
decided there, then one append to its sink); the flusher thread turns the bodies into rows here.
Columns are named by the model's signature (scikit-learn's `feature_names_in_`, an MLflow or ONNX
signature, as the replica reported them), else by position ("0", "1", ... as pandas names the
columns of a list of lists). Every row carries the request id as `correlationid`.
"""

from __future__ import annotations

import random
import time

import orjson

from ..runtime.loaders import rows_of
from ..runtime.v2 import parse_request, parse_response
from .sink import Sink

INPUTS, OUTPUTS, REQUEST, RESPONSE = "model_inputs", "model_outputs", "request", "response"


class PayloadCollector:
    def __init__(self, sink: Sink, rates: dict[str, float], capture_headers: list[str]):
        self.sink = sink
        self.configure(rates, capture_headers)

    def configure(self, rates: dict[str, float], capture_headers: list[str]) -> None:
        self.rates = dict(rates)
        self._always = tuple(c for c, r in rates.items() if r >= 1.0)
        self._sampled = tuple((c, r) for c, r in rates.items() if 0.0 < r < 1.0)
        self.capture = tuple(h.lower().encode("latin-1") for h in capture_headers)

    def offer(self, rid: str, body: bytes, answer: bytes, metadata, headers: dict, v2: int | None = None) -> None:
        """On the request path, after the answer went out. `v2`: a V2 inference request's JSON
        header length (0: all JSON), its `answer` framed as the replica framed it (runtime/v2.py)."""
        wanted = self._always
        if self._sampled:
            wanted = wanted + tuple(c for c, r in self._sampled if random.random() < r)
            if not wanted:
                return
        elif not wanted:
            return
        captured = {h.decode(): headers[h].decode("latin-1") for h in self.capture if h in headers} \
            if self.capture else None
        self.sink.put((time.time(), rid, body, answer, metadata, captured, wanted, v2))


def convert(entry: tuple) -> dict[str, list[dict]]:
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
    rows = rows_of(body)
    names = feature_names(metadata)
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


def output_rows(answer: bytes, metadata) -> list[dict]:
    doc = orjson.loads(answer)
    outputs = (metadata or {}).get("outputs") or []
    name = outputs[0]["name"] if outputs else "predict"
    if isinstance(doc, dict):
        for key in ("predictions", "outputs", "result"):
            if key in doc:
                doc = doc[key]
                break
        else:
            cols = {k: v for k, v in doc.items() if isinstance(v, list)}
            lengths = {len(v) for v in cols.values()}
            if cols and len(lengths) == 1:
                n = lengths.pop()
                return [{k: v[i] for k, v in cols.items()} for i in range(n)]
            return [doc]
    if not isinstance(doc, list):
        doc = [doc]
    rows = []
    for v in doc:
        if isinstance(v, dict):
            rows.append(v)
        elif isinstance(v, list):
            rows.append({f"{name}_{i}": x for i, x in enumerate(v)})
        else:
            rows.append({name: v})
    return rows
