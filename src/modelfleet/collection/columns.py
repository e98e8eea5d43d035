"""Payload entries -> Arrow tables a batch at a time, in the writer process (rows.py entry by entry).

A deployment's batch arrives packed (payload.PayloadSink.pack): its bodies joined by commas into one
buffer, its answers into another, times and collection bits as arrays, the model's signature
once. When every entry is a JSON request named by one signature, each buffer is parsed by one
orjson call and the common shapes go straight into Arrow columns: input rows that are lists of
one width (named by the model's features, else by position), predictions that are scalars or
lists of one width, and request and response text. A batch with anything else (rows as objects,
mixed widths, a feature named like a base or header column, V2 requests, a rollout inside it)
goes entry by entry through rows.convert as row dicts; both ways give the same tables
(tests/unit/monitoring/test_columns.py). A request whose body or answer cannot be read is
dropped whole and counted as `unreadable`.
"""

from __future__ import annotations

import collections

import numpy as np
import orjson

from ..runtime.loaders import rows_in
from .rows import (BITS, INPUTS, OUTPUTS, REQUEST, RESPONSE, collections_of, convert, feature_names,
                   output_name, predictions)
from .sink import Sink, Written, group_rows, write_groups
from .windows import window_parts

BASE = ("correlationid", "time")
SCALARS = {int, float, str, bool, type(None)}
Groups = dict[tuple[str, tuple[str, ...]], object]   # (collection, window parts) -> table or row dicts


def write_packed(sink: Sink, packed: dict, tag: str) -> Written:
    """Write a packed batch (payload.PayloadSink.pack) under `tag`: the same batch, the same files."""
    out = Written()
    return write_groups(sink, groups_of(Batch(packed), sink.rolling_rate, out.dropped), tag, out)


def groups_of(batch: Batch, rolling_rate: str, dropped: collections.Counter) -> Groups:
    """The batch's tables (or row dicts) by (collection, window parts)."""
    groups = tables(batch, rolling_rate, dropped) if batch.v2 is None and batch.generations is None else None
    if groups is None:
        groups = group_rows([batch.entry(i) for i in range(batch.n)], convert, rolling_rate, dropped)
    return groups


class Batch:
    """A packed batch, read back."""

    def __init__(self, packed: dict):
        self.n = packed["n"]
        self.times = np.frombuffer(packed["time"], np.float64)
        rid = packed["rid"]
        self.rids = rid.split("\n") if isinstance(rid, str) else rid
        self.body, self.answer = packed["body"], packed["answer"]
        self.body_at, self.answer_at = _offsets(packed["body_len"]), _offsets(packed["answer_len"])
        self.wanted = packed["wanted"]
        self.v2, self.captured = packed["v2"], packed["captured"]
        generation = packed["generation"]
        self.generations = generation if isinstance(generation, list) else None
        self.metadatas = packed["metadata"]
        self.metadata = None if self.generations else self.metadatas.get(generation)

    def body_of(self, i: int) -> bytes:
        start, end = self.body_at[i]
        return self.body[start:end]

    def answer_of(self, i: int) -> bytes:
        start, end = self.answer_at[i]
        return self.answer[start:end]

    def headers_of(self, i: int) -> dict | None:
        return dict(self.captured[i]) if self.captured and self.captured[i] else None

    def entry(self, i: int) -> tuple:
        """Entry `i` as rows.convert takes it."""
        metadata = self.metadatas.get(self.generations[i]) if self.generations else self.metadata
        return (float(self.times[i]), self.rids[i], self.body_of(i), self.answer_of(i), metadata, self.headers_of(i),
                collections_of(self.wanted[i]), self.v2[i] if self.v2 else None)


def _offsets(lengths: bytes) -> list[tuple[int, int]]:
    """(start, end) of each part of a buffer joined by single commas."""
    n = np.frombuffer(lengths, np.int64)
    ends = np.cumsum(n + 1) - 1
    return list(zip((ends - n).tolist(), ends.tolist()))


def _parse_all(buffer: bytes, n: int) -> list | None:
    """Every part of a comma-joined buffer of JSON documents, by one parse; None when one part is
    not JSON (then each is parsed alone)."""
    try:
        docs = orjson.loads(b"[" + buffer + b"]")
    except orjson.JSONDecodeError:
        return None
    return docs if len(docs) == n else None


def tables(batch: Batch, rolling_rate: str, dropped: collections.Counter) -> Groups | None:
    """A batch of JSON requests of one signature as tables, by collection and window; None when
    a collection is not of the common shapes (then rows.convert's row dicts are written)."""
    import pyarrow as pa
    n, wanted = batch.n, batch.wanted
    union = 0
    for bits in set(wanted):
        union |= bits
    bad: set[int] = set()
    per_entry = {}   # collection -> per entry: its input rows or its predictions (None: not wanted)
    if union & BITS[INPUTS]:
        per_entry[INPUTS] = _read(batch, BITS[INPUTS], bad, rows_in, batch.body, batch.body_of)
    if union & BITS[OUTPUTS]:
        per_entry[OUTPUTS] = _read(batch, BITS[OUTPUTS], bad, predictions, batch.answer, batch.answer_of)
    names = {INPUTS: _columns(per_entry.get(INPUTS), bad, feature_names(batch.metadata)),
             OUTPUTS: _columns(per_entry.get(OUTPUTS), bad, [output_name(batch.metadata)], scalars=True),
             REQUEST: ["data"], RESPONSE: ["data"]}
    windows = _windows(batch.times, rolling_rate)
    groups: Groups = {}
    for collection, bit in BITS.items():
        if not union & bit:
            continue
        if names[collection] is None:
            return None
        chosen = range(n) if not bad and len(set(wanted)) == 1 else \
            [i for i in range(n) if wanted[i] & bit and i not in bad]
        for parts, members in windows(list(chosen)):
            try:
                built = _table(batch, collection, members, names[collection], per_entry.get(collection))
            except (pa.ArrowException, TypeError):   # a column of values of no one type: counted as row dicts are
                return None
            if built is None:
                return None
            if built.num_rows:
                groups[(collection, parts)] = built
    if bad:
        dropped["unreadable"] += len(bad)
    return groups


def _read(batch: Batch, bit: int, bad: set, extract, buffer: bytes, part_of) -> list:
    """Per entry, `extract` of its parsed document (None for entries that do not want `bit`);
    entries whose document cannot be read go to `bad`."""
    docs = _parse_all(buffer, batch.n)
    out: list = [None] * batch.n
    for i in range(batch.n):
        if not batch.wanted[i] & bit:
            continue
        try:
            out[i] = extract(docs[i] if docs is not None else orjson.loads(part_of(i)))
        except Exception:   # not rows: the whole request is dropped
            bad.add(i)
    return out


def _columns(per_entry: list | None, bad: set, names: list[str], scalars: bool = False) -> list[str] | None:
    """The value columns of a collection whose rows are all lists of one width, named (or by
    position), or with `scalars` whose predictions are all scalars (one column) or lists of one
    width; None for any other shape."""
    if per_entry is None:
        return None
    kept = [v for i, v in enumerate(per_entry) if v is not None and i not in bad]
    if not all(type(v) is list for v in kept):
        return None
    flat = [row for rows in kept for row in rows]
    types = set(map(type, flat))
    if scalars and types <= SCALARS:
        cols = names[:1]
    else:
        widths = set(map(len, flat)) if types == {list} else set()
        if len(widths) != 1:
            return None
        width = widths.pop()
        cols = [f"{names[0]}_{i}" for i in range(width)] if scalars else \
            [names[i] if i < len(names) else str(i) for i in range(width)]
    return cols if cols and len(set(cols)) == len(cols) and not set(cols) & set(BASE) else None


def _windows(times: np.ndarray, rolling_rate: str):
    """A function splitting a list of entries into (window parts, entries) groups."""
    minutes = (times // 60).astype(np.int64)
    if len(minutes) and minutes.min() == minutes.max():
        parts = window_parts(float(times[0]), rolling_rate)
        return lambda members: [(parts, members)] if members else []
    by_minute: dict[int, tuple[str, ...]] = {}

    def split(members: list[int]) -> list:
        out: dict[tuple[str, ...], list[int]] = {}
        for i in members:
            m = int(minutes[i])
            if m not in by_minute:
                by_minute[m] = window_parts(float(times[i]), rolling_rate)
            out.setdefault(by_minute[m], []).append(i)
        return list(out.items())
    return split


def _table(batch: Batch, collection: str, members: list[int], names: list[str], per_entry: list | None):
    """One group's table (its rows may be none); None when a value column is named like a
    header column (then row dicts are written)."""
    import pyarrow as pa
    headers = batch.headers_of(members[0])
    header_names = [f"header_{k}" for k in headers] if headers else []
    if set(names) & set(header_names):
        return None
    if per_entry is None:   # request, response: the text
        part = batch.body_of if collection == REQUEST else batch.answer_of
        index, values = members, [[part(i).decode("utf-8", "replace") for i in members]]
    else:
        rows = [per_entry[i] for i in members]
        flat = [row for r in rows for row in r]
        counts = list(map(len, rows))
        index = members if counts.count(1) == len(counts) else [i for i, c in zip(members, counts) for _ in range(c)]
        values = [flat] if flat and type(flat[0]) is not list else [list(col) for col in zip(*flat)]
        if not flat:
            values = [[] for _ in names]
    times = batch.times[index]
    columns = [pa.array([batch.rids[i] for i in index], pa.string()),
               pa.array((times * 1000).astype(np.int64), pa.timestamp("ms", tz="UTC"))]
    if headers:
        captured = [batch.headers_of(i) or {} for i in index]
        columns += [pa.array([c.get(h) for c in captured]) for h in headers]
    columns += [pa.array(v) for v in values]
    return pa.Table.from_arrays(columns, [*BASE, *header_names, *names])
