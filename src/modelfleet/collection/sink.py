"""Collected rows -> Parquet files, off the request path.

A `Sink` (one per deployment in a process) is a bounded list that the request path appends one
tuple to, and nothing more: no parsing, no I/O, no lock. Each `FLUSH_EVERY_S` the sinks are
drained (two slice operations, safe against appends meanwhile) and their entries written: by
`write_entries`, which turns each into rows (the sink's `convert`), or by the sink's own `write`
(payload.py's, a batch at a time), one Parquet file per collection and window (temp file +
rename, so a reader never sees half a file): in the server by its writer process (writer.py), in a
replica by a `Flusher` thread. A full queue (a slow disk) or a failed write (a full disk) drops
the samples and counts them; the request that produced them was answered long before.
"""

from __future__ import annotations

import collections
import datetime as dt
import itertools
import logging
import os
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from .windows import collection_dir, window_parts, windows

log = logging.getLogger("modelfleet.monitoring")

FLUSH_EVERY_S = 1.0
# Per sink, entries (and for payload entries, bytes of bodies and answers) waiting to be written;
# past either, samples drop. Five seconds of the most one server answers on a 2-core machine, so
# that a writer late by a few seconds (starting, a busy disk) drops nothing; a stuck one does.
DEFAULT_QUEUE_ROWS = 50_000
DEFAULT_QUEUE_BYTES = 64 * 1024 * 1024
# The writer turns entries into rows this many at a time, then lets the GIL go: the event loop the
# gateway runs on never waits behind a whole second's worth of conversion (that showed in p99).
CHUNK = 200
YIELD_S = 0.0005
PRUNE_EVERY_S = 600.0
WARN_EVERY_S = 60.0

# convert(entry) -> {collection: [row dicts]}; a row has "correlationid" and "time" (epoch seconds)
Convert = Callable[[tuple], dict[str, list[dict]]]


class Sink:
    def __init__(self, root: Path, endpoint: str, deployment: str, convert: Convert | None, rolling_rate: str = "hour",
                 retention_days: int = 30, capacity: int = DEFAULT_QUEUE_ROWS):
        self.root, self.endpoint, self.deployment = root, endpoint, deployment
        self.convert = convert
        self.rolling_rate, self.retention_days = rolling_rate, retention_days
        self.capacity = capacity
        self.queue: list = []
        self.offered = 0            # entries accepted onto the queue
        self.rows: collections.Counter = collections.Counter()      # rows written, by collection
        self.dropped: collections.Counter = collections.Counter()   # entries or rows dropped, by reason
        self.uploads: collections.Counter = collections.Counter()   # files put in the default datastore: uploaded, failed

    def put(self, entry: tuple) -> None:
        """On the request path: one append, or one count when the queue is full."""
        if len(self.queue) >= self.capacity:
            self.dropped["queue_full"] += 1
            return
        self.queue.append(entry)
        self.offered += 1

    def count(self, written: Written) -> None:
        self.rows.update(written.rows)
        self.dropped.update(written.dropped)

    def drain(self) -> list[tuple]:
        """The entries queued so far, removed from the queue. Called from another thread than
        put's: entries appended between the two slices stay queued, after those taken."""
        n = len(self.queue)
        out = self.queue[:n]
        del self.queue[:n]
        return out

    def write(self, entries: list[tuple], tag: str, pause_s: float = 0.0) -> Written:
        return write_entries(self, entries, tag, pause_s)


@dataclass
class Written:
    """What writing one sink's entries gave: rows written and dropped, by collection and reason,
    and the first failure (for one warning line)."""
    rows: collections.Counter = field(default_factory=collections.Counter)
    dropped: collections.Counter = field(default_factory=collections.Counter)
    failure: str | None = None
    files: list[Path] = field(default_factory=list)   # the Parquet files written


def write_entries(sink: Sink, entries: list[tuple], tag: str, pause_s: float = YIELD_S) -> Written:
    """Turn `entries` into rows (the sink's `convert`) and write one Parquet file per collection
    and window. Files are named by `tag`, so writing the same entries again under the same tag
    replaces the same files: a batch resent after its writer died is not written twice. In a
    process that also serves requests, `pause_s` lets the GIL go every CHUNK entries."""
    out = Written()
    return write_groups(sink, group_rows(entries, sink.convert, sink.rolling_rate, out.dropped, pause_s), tag, out)


def group_rows(entries: list, convert: Convert, rolling_rate: str, dropped: collections.Counter,
               pause_s: float = 0.0) -> dict[tuple[str, tuple[str, ...]], list[dict]]:
    """Each entry's rows (`convert`) by collection and window; an entry that `convert` cannot
    read is counted in `dropped` as unreadable."""
    groups: dict[tuple[str, tuple[str, ...]], list[dict]] = {}
    windows_of: dict[int, tuple[str, ...]] = {}   # minute -> window: the finest rolling rate is a minute
    for i, entry in enumerate(entries):
        if pause_s and i and not i % CHUNK:
            time.sleep(pause_s)
        try:
            converted = convert(entry)
        except Exception:   # a payload that is not rows: nothing to collect from it
            dropped["unreadable"] += 1
            continue
        for name, rows in converted.items():
            for row in rows:
                minute = int(row["time"] // 60)
                parts = windows_of.get(minute)
                if parts is None:
                    parts = windows_of[minute] = window_parts(row["time"], rolling_rate)
                groups.setdefault((name, parts), []).append(row)
    return groups


def write_groups(sink: Sink, groups: dict, tag: str, out: Written) -> Written:
    """Write each (collection, window parts) group, rows (dicts) or a table already built, as one
    Parquet file named by `tag` and the group's place."""
    import pyarrow as pa
    for i, ((name, parts), rows) in enumerate(groups.items()):
        folder = collection_dir(sink.root, sink.endpoint, sink.deployment, name).joinpath(*parts)
        try:
            table = rows_table(rows) if isinstance(rows, list) else rows
        except (pa.ArrowException, KeyError, TypeError):   # values of one column that are no one type
            out.dropped["unreadable"] += len(rows)
            continue
        try:
            out.files.append(write_table(folder, table, f"{tag}-{i}"))
            out.rows[name] += table.num_rows
        except OSError as e:
            out.dropped["write_failed"] += table.num_rows
            out.failure = out.failure or (f"collected rows of {sink.endpoint}/{sink.deployment}/{name} dropped: "
                                          f"{e.strerror or e} ({folder})")
    return out


class Warnings:
    """At most one warning line a minute about dropped samples (the counts are in /metrics)."""

    def __init__(self):
        self._warned = 0.0

    def __call__(self, message: str | None) -> None:
        now = time.monotonic()
        if message and now - self._warned > WARN_EVERY_S:
            self._warned = now
            log.warning("%s; more drops are counted in modelfleet_collection_dropped_total", message)


class Drainer:
    """Sinks drained every `every_s` by one thread of their own; `flush` is the subclass's: write
    the entries here (Flusher) or hand them to the writer process (writer_client.py)."""

    def __init__(self, every_s: float = FLUSH_EVERY_S):
        self.every_s = every_s
        self.sinks: dict[tuple[str, str], Sink] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seq = itertools.count()
        self._warn = Warnings()

    def add(self, sink: Sink) -> None:
        self.sinks[(sink.endpoint, sink.deployment)] = sink
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="collection-flusher", daemon=True)
            self._thread.start()

    def remove(self, endpoint: str, deployment: str) -> None:
        sink = self.sinks.pop((endpoint, deployment), None)
        if sink is not None:
            self.flush([sink])

    def stop(self) -> None:
        """Write what is queued, then stop."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self.flush(stop=True)

    def _run(self) -> None:
        # on a fixed cadence: a flush that took long (a busy disk) is not followed by a full wait
        # while the queues fill
        due = time.monotonic() + self.every_s
        while not self._stop.wait(max(0.0, due - time.monotonic())):
            due = max(due + self.every_s, time.monotonic())
            try:
                self.flush()
                self.tick()
            except Exception:  # never let one bad batch end collection for every deployment
                log.exception("collecting data failed")

    def tick(self) -> None:
        """After each flush of the thread."""

    def flush(self, sinks: list[Sink] | None = None, stop: bool = False) -> None:
        raise NotImplementedError


class Flusher(Drainer):
    """Writes every sink's rows in this process (a replica's score.py receiver; the server hands
    its sinks to a writer process instead: writer.py)."""

    def __init__(self, every_s: float = FLUSH_EVERY_S):
        super().__init__(every_s)
        self._tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._pruned = 0.0

    def tick(self) -> None:
        if time.monotonic() - self._pruned > PRUNE_EVERY_S:
            self._pruned = time.monotonic()
            for sink in list(self.sinks.values()):
                prune(sink)

    def flush(self, sinks: list[Sink] | None = None, stop: bool = False) -> None:
        for sink in sinks if sinks is not None else list(self.sinks.values()):
            self.flush_sink(sink)

    def flush_sink(self, sink: Sink) -> None:
        entries = sink.drain()
        if entries:
            written = sink.write(entries, f"{self._tag}-{next(self._seq)}", YIELD_S)
            sink.count(written)
            self._warn(written.failure)


def rows_table(rows: list[dict]):
    """Rows as an Arrow table: columns as the first row names them, `time` (epoch seconds) as a
    UTC timestamp in milliseconds."""
    import pyarrow as pa
    table = pa.Table.from_pylist(rows)
    return table.set_column(table.schema.get_field_index("time"), "time",
                            pa.array([int(r["time"] * 1000) for r in rows], pa.timestamp("ms", tz="UTC")))


def write_parquet(folder: Path, rows: list[dict], tag: str) -> Path:
    return write_table(folder, rows_table(rows), tag)


def write_table(folder: Path, table, tag: str) -> Path:
    import pyarrow.parquet as pq
    folder.mkdir(parents=True, exist_ok=True)
    name = f"part-{table.column('time')[0].value}-{tag}.parquet"
    tmp = folder / f".{name}.tmp"
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, folder / name)
    finally:
        if tmp.exists():
            tmp.unlink()
    return folder / name


def prune(sink: Sink, now: float | None = None) -> int:
    """Remove the sink's windows older than its retention; how many."""
    cutoff = dt.datetime.fromtimestamp(now or time.time(), dt.timezone.utc) - dt.timedelta(days=sink.retention_days)
    base = collection_dir(sink.root, sink.endpoint, sink.deployment, "x").parent
    removed = 0
    for collection in _dirs(base):
        for begun, folder in windows(collection):
            if begun < cutoff:
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
    return removed


def _dirs(base: Path) -> Iterable[Path]:
    return [p for p in base.iterdir() if p.is_dir()] if base.is_dir() else []
