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

    def offer(self, rid: str, body: bytes, answer: bytes, metadata, headers: dict) -> None:
        """On the request path, after the answer went out."""
        wanted = self._always
        if self._sampled:
            wanted = wanted + tuple(c for c, r in self._sampled if random.random() < r)
            if not wanted:
                return
        elif not wanted:
            return
        captured = {h.decode(): headers[h].decode("latin-1") for h in self.capture if h in headers} \
            if self.capture else None
        self.sink.put((time.time(), rid, body, answer, metadata, captured, wanted))


def convert(entry: tuple) -> dict[str, list[dict]]:
    t, rid, body, answer, metadata, captured, wanted = entry
    out: dict[str, list[dict]] = {}
    base = {"correlationid": rid, "time": t}
    if captured:
        base.update({f"header_{k}": v for k, v in captured.items()})
    for name in wanted:
        if name == REQUEST:
            out[name] = [{**base, "data": body.decode("utf-8", "replace")}]
        elif name == RESPONSE:
            out[name] = [{**base, "data": answer.decode("utf-8", "replace")}]
        elif name == INPUTS:
            out[name] = [{**base, **r} for r in input_rows(body, metadata)]
        elif name == OUTPUTS:
            out[name] = [{**base, **r} for r in output_rows(answer, metadata)]
    return out


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
