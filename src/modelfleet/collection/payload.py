"""Payload collection: what a deployment receives and answers, with no code in the model.

The gateway hands each answered scoring request to the deployment's `PayloadCollector`: sampling
decided there, then one append of references to its `PayloadSink`'s queue. Once a flush the sink's
entries are packed for the writer process (bodies and answers each joined into one buffer, the
model's signature once per deployment rather than once per entry), and the writer turns them into
columns (columns.py), or entry by entry into rows here (`convert`) when a batch is not of the
common shapes. Columns are named by the model's signature (scikit-learn's `feature_names_in_`, an
MLflow or ONNX signature, as the replica reported them), else by position ("0", "1", ... as
pandas names the columns of a list of lists). Every row carries the request id as `correlationid`.
"""

from __future__ import annotations

import random
import time
from array import array
from operator import itemgetter

import orjson

from ..runtime.loaders import rows_in
from ..runtime.v2 import parse_request, parse_response
from .sink import DEFAULT_QUEUE_BYTES, DEFAULT_QUEUE_ROWS, Sink, Written

INPUTS, OUTPUTS, REQUEST, RESPONSE = "model_inputs", "model_outputs", "request", "response"
# an entry's collections, as the bits of one small int (no tuple per entry)
BITS = {INPUTS: 1, OUTPUTS: 2, REQUEST: 4, RESPONSE: 8}


def collections_of(bits: int) -> tuple[str, ...]:
    return tuple(name for name, bit in BITS.items() if bits & bit)


class PayloadCollector:
    def __init__(self, sink: PayloadSink, rates: dict[str, float], capture_headers: list[str]):
        self.sink = sink
        self.configure(rates, capture_headers)

    def configure(self, rates: dict[str, float], capture_headers: list[str]) -> None:
        self.rates = dict(rates)
        self._always = sum(BITS[c] for c, r in rates.items() if r >= 1.0)
        self._sampled = tuple((BITS[c], r) for c, r in rates.items() if 0.0 < r < 1.0)
        self.capture = tuple(h.lower().encode("latin-1") for h in capture_headers)

    def offer(self, rid: str, body: bytes, answer: bytes, metadata, headers: dict, v2: int | None = None) -> None:
        """On the request path, after the answer went out. `v2`: a V2 inference request's JSON
        header length (0: all JSON), its `answer` framed as the replica framed it (runtime/v2.py).
        The entry holds only strings, bytes and numbers: the garbage collector stops tracking it
        at its first look, so a second of queued entries never lengthens a collection."""
        wanted = self._always
        if self._sampled:
            for bit, rate in self._sampled:
                if random.random() < rate:
                    wanted |= bit
        if not wanted:
            return
        sink = self.sink
        if metadata is not sink.metadata:
            sink.switch(metadata)
        captured = tuple((h.decode(), headers[h].decode("latin-1")) for h in self.capture if h in headers) \
            if self.capture else None
        sink.put((time.time(), rid, body, answer, wanted, v2, captured or None, sink.generation))


class PayloadSink(Sink):
    """The queue of one deployment's payload entries: (time, request id, body, answer, collection
    bits, V2 header length or None, captured headers or None, signature generation). The model's
    signature (its metadata) is kept here by generation, a new one when a rollout changes it, and
    sent once per batch."""

    def __init__(self, root, endpoint: str, deployment: str, rolling_rate: str = "hour", retention_days: int = 30,
                 capacity: int = DEFAULT_QUEUE_ROWS, max_bytes: int = DEFAULT_QUEUE_BYTES):
        super().__init__(root, endpoint, deployment, None, rolling_rate, retention_days, capacity)
        self.max_bytes = max_bytes
        self.metadata = None
        self.generation = 0
        self.metadatas: dict = {0: None}
        self._put_bytes = 0       # written by the request path only
        self._drained_bytes = 0   # by the draining thread only: neither loses the other's updates

    def switch(self, metadata) -> None:
        """A new signature (a rollout): entries from now on are named by it."""
        self.metadatas[self.generation + 1] = metadata
        self.generation += 1
        self.metadata = metadata

    def put(self, entry: tuple) -> None:
        size = len(entry[2]) + len(entry[3])
        if len(self.queue) >= self.capacity or self._put_bytes - self._drained_bytes + size > self.max_bytes:
            self.dropped["queue_full"] += 1
            return
        self.queue.append(entry)
        self._put_bytes += size
        self.offered += 1

    def drain(self) -> list[tuple]:
        entries = super().drain()
        self._drained_bytes += sum(map(len, map(itemgetter(2), entries))) + sum(map(len, map(itemgetter(3), entries)))
        return entries

    def pack(self, entries: list[tuple]) -> dict:
        """Entries as the writer's frame carries them: a few buffers and arrays, built by C loops
        (this runs in the server, beside the event loop)."""
        t, rids, bodies, answers, wanted, v2, captured, gens = zip(*entries)
        n = len(entries)
        joined = "\n".join(rids)
        current = set(gens)
        for g in [g for g in self.metadatas if g < min(current) and g != self.generation]:
            del self.metadatas[g]   # no entry of that signature is left
        return {"n": n, "time": array("d", t).tobytes(), "rid": joined if joined.count("\n") == n - 1 else list(rids),
                "body": b",".join(bodies), "body_len": array("q", map(len, bodies)).tobytes(),
                "answer": b",".join(answers), "answer_len": array("q", map(len, answers)).tobytes(),
                "wanted": bytes(wanted), "v2": None if v2.count(None) == n else list(v2),
                "captured": None if captured.count(None) == n else list(captured),
                "generation": gens[0] if len(current) == 1 else list(gens),
                "metadata": {g: self.metadatas.get(g) for g in current}}

    def write(self, entries: list[tuple], tag: str, pause_s: float = 0.0) -> Written:
        from .columns import write_packed
        return write_packed(self, self.pack(entries), tag)


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
