"""Payload collection: what a deployment receives and answers, with no code in the model.

The gateway hands each answered scoring request to the deployment's `PayloadCollector`: sampling
decided there, then one append of references to its `PayloadSink`'s queue. Once a flush the sink's
entries are packed for the writer process (bodies and answers each joined into one buffer, the
model's signature once per deployment rather than once per entry), which turns them into columns
(columns.py) or, for a batch not of the common shapes, entry by entry into rows (rows.py).
"""

from __future__ import annotations

import random
import time
from array import array
from operator import itemgetter

from .columns import write_packed
from .rows import BITS
from .sink import DEFAULT_QUEUE_BYTES, DEFAULT_QUEUE_ROWS, Sink, Written


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
        for g in [g for g in list(self.metadatas) if g < min(current) and g != self.generation]:
            del self.metadatas[g]   # no entry of that signature is left (list(): a rollout may add one meanwhile)
        return {"n": n, "time": array("d", t).tobytes(), "rid": joined if joined.count("\n") == n - 1 else list(rids),
                "body": b",".join(bodies), "body_len": array("q", map(len, bodies)).tobytes(),
                "answer": b",".join(answers), "answer_len": array("q", map(len, answers)).tobytes(),
                "wanted": bytes(wanted), "v2": None if v2.count(None) == n else list(v2),
                "captured": None if captured.count(None) == n else list(captured),
                "generation": gens[0] if len(current) == 1 else list(gens),
                "metadata": {g: self.metadatas.get(g) for g in current}}

    def write(self, entries: list[tuple], tag: str, pause_s: float = 0.0) -> Written:
        return write_packed(self, self.pack(entries), tag)
