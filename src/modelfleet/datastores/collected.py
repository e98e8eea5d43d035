"""Collected data in the workspace's default datastore: the collection writer with uploads.

`python -m modelfleet.datastores.collected ROOT` is the collection writer (collection/writer.py)
plus an `Uploader`: when the default datastore is a blob container, each Parquet file the writer
wrote is put in it under the same name as under the workspace's folder, Azure's layout
(`modelDataCollector/<endpoint>/<deployment>/<collection>/yyyy/MM/dd/HH[/mm]/<file>`), once its
window has closed. Uploads run on a thread of the writer process, never on the request path:

- the local file is the copy of record until it is uploaded; then a marker `.<file>.uploaded`
  beside it says so (a marker, not a deletion: monitors read the local copy first);
- a store that is down or slow fails an upload, which is counted (`failed`) and tried again
  later with a backoff; the file waits on disk. A new writer (a restart) finds every file
  without its marker and uploads it: nothing written locally is lost to a store outage;
- files written by others (a score.py replica's Collector writes its own) are found by a scan of
  today's and yesterday's windows every `RESCAN_S`;
- a writer that stops (the server stops, or its pipe closes) uploads every file it has, window
  open or not: a file is complete once it has its name, and a later writer writes new names into
  the same window. Files a writer finds left by an earlier one go up at once for the same reason;
- retention removes expired windows from the container as from the folder.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import threading
import time
from pathlib import Path

from ..collection.windows import ROOT, window_start
from ..collection import writer
from ..domain.errors import FleetError

log = logging.getLogger("modelfleet.monitoring")

EVERY_S = 2.0            # how often pending files are looked at
GRACE_S = 5.0            # after a window's end: the last flush of its rows has landed
MAX_BACKOFF_S = 60.0
RESCAN_S = 300.0         # files the writer did not write (score.py replicas' Collector) are found so
WARN_EVERY_S = 60.0
FINISH_S = 20.0          # a stopping writer's last uploads: within the server's wait for it (STOP_TIMEOUT_S)
SPAN = {3: dt.timedelta(days=1), 4: dt.timedelta(hours=1), 5: dt.timedelta(minutes=1)}   # by window depth


def marker(path: Path) -> Path:
    return path.with_name(f".{path.name}.uploaded")


def window_of(rel: tuple[str, ...]) -> tuple[dt.datetime, dt.datetime] | None:
    """(start, end) of the window of a blob or file named `modelDataCollector/ep/dep/coll/yyyy/...
    /<file>` (split into parts), or None when the name is not laid out so."""
    parts = rel[4:-1]
    if rel[:1] != (ROOT,) or len(parts) not in SPAN or not all(p.isdigit() for p in parts):
        return None
    start = window_start(parts)
    return start, start + SPAN[len(parts)]


class Uploader:
    def __init__(self, root: Path):
        self.root = root
        self.doc = None            # the default datastore's document (sent by the server), or None
        self.store = None
        self.pending: dict[Path, tuple[float, float]] = {}   # file -> (next try, backoff)
        self.complete: set[Path] = set()   # pending files that need not wait for their window's end
        self.expired: list[tuple[str, str, int]] = []        # (endpoint, deployment, retention days)
        self.uploaded: collections.Counter = collections.Counter()   # (endpoint, deployment) -> files
        self.failed: collections.Counter = collections.Counter()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._warned = 0.0
        self._closed = False
        self._finishing = False
        self._thread = threading.Thread(target=self._run, name="collection-uploader", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """End the thread after its current upload (a writer's ends with its process)."""
        self._closed = True
        self._wake.set()

    def finish(self, timeout: float = FINISH_S) -> None:
        """The writer stops: one last pass uploads every pending file, its window open or not, then
        the thread ends. What the store does not take within `timeout` waits for the next writer."""
        self._finishing = True
        self._wake.set()
        self._thread.join(timeout)

    # --- from the writer's loop

    def configure(self, doc) -> None:
        """The default datastore as the server sent it (None: the workspace's own folder)."""
        if doc == self.doc:
            return
        with self._lock:
            self.doc, self.store = doc, None
        self._wake.set()

    def written(self, files: list[Path], complete: bool = False) -> None:
        with self._lock:
            for f in files:
                self.pending[f] = (0.0, EVERY_S)
            if complete:
                self.complete.update(files)

    def prune(self, endpoint: str, deployment: str, retention_days: int) -> None:
        with self._lock:
            self.expired.append((endpoint, deployment, retention_days))
        self._wake.set()

    def counts(self) -> list[tuple[str, str, int, int]]:
        """(endpoint, deployment, files uploaded, uploads failed) since the last call."""
        with self._lock:
            keys = set(self.uploaded) | set(self.failed)
            out = [(ep, dep, self.uploaded[(ep, dep)], self.failed[(ep, dep)]) for ep, dep in sorted(keys)]
            self.uploaded.clear()
            self.failed.clear()
        return out

    # --- the uploader's thread

    def _run(self) -> None:
        scanned_for, rescanned = None, time.monotonic()
        while not self._closed:
            if not self._finishing:
                self._wake.wait(EVERY_S)
            self._wake.clear()
            if self._closed:
                return
            final = self._finishing
            try:
                store = self._open()
                if store is not None:
                    if scanned_for is not store:   # a new writer or a new default: files left from before
                        # the first scan finds what earlier writers left: complete, no window to wait for
                        self.written(self._unmarked(), complete=scanned_for is None)
                        scanned_for = store
                    elif time.monotonic() - rescanned > RESCAN_S:
                        rescanned = time.monotonic()
                        self.written(self._unmarked(recent=True))
                    self._upload(store, final)
                    if not final:
                        self._expire(store)
            except Exception as e:   # never let one bad file end uploads for every deployment
                self._warn(f"uploading collected data failed: {e}")
            if final:
                return

    def _open(self):
        with self._lock:
            if self.store is None and self.doc is not None:
                from . import open_datastore
                self.store = open_datastore(self.doc)
            return self.store

    def _unmarked(self, recent: bool = False) -> list[Path]:
        """Parquet files without their marker: every one, or those of today's and yesterday's windows."""
        base = self.root / ROOT
        if not base.is_dir():
            return []
        today = dt.datetime.now(dt.timezone.utc)
        days = [(today - dt.timedelta(days=n)).strftime("%Y/%m/%d") for n in (0, 1)] if recent else [""]
        return [p for day in days for p in base.glob(f"*/*/*/{day}/**/*.parquet" if day else "**/*.parquet")
                if not p.name.startswith(".") and not marker(p).exists() and p not in self.pending]

    def _upload(self, store, final: bool = False) -> None:
        """Upload the files due; `final` (the writer stops): every pending one, windows open or not."""
        now, wall = time.monotonic(), dt.datetime.now(dt.timezone.utc)
        with self._lock:
            due = [(f, t) for f, t in self.pending.items() if final or t[0] <= now]
        for f, (_, backoff) in sorted(due):
            rel = f.relative_to(self.root).parts
            window = window_of(rel)
            if window is None or not f.exists():   # pruned meanwhile, or not collected data
                with self._lock:
                    self.pending.pop(f, None)
                    self.complete.discard(f)
                continue
            if not final and f not in self.complete and window[1] + dt.timedelta(seconds=GRACE_S) > wall:
                continue   # its window is still open: more files may come, uploaded then
            key = (rel[1], rel[2])
            try:
                store.put_file("/".join(rel), f)
                marker(f).touch()
            except (FleetError, OSError) as e:
                with self._lock:
                    self.failed[key] += 1
                    for g, t in self.pending.items():   # the store is down: every file waits its backoff
                        self.pending[g] = (time.monotonic() + t[1], min(MAX_BACKOFF_S, t[1] * 2))
                self._warn(f"a collected file could not be uploaded: {e}")
                return
            with self._lock:
                self.pending.pop(f, None)
                self.complete.discard(f)
                self.uploaded[key] += 1

    def _expire(self, store) -> None:
        with self._lock:
            expired, self.expired = self.expired, []
        for endpoint, deployment, days in expired:
            cutoff = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=days)
            for name in store.names(f"{ROOT}/{endpoint}/{deployment}/"):
                window = window_of(tuple(name.split("/")))
                if window is not None and window[0] < cutoff:
                    store.delete_name(name)

    def _warn(self, message: str) -> None:
        if time.monotonic() - self._warned > WARN_EVERY_S:
            self._warned = time.monotonic()
            log.warning("%s (files wait on disk; failed uploads are counted in "
                        "modelfleet_collection_upload_failures_total)", message)


def fetch_missing(store, path: str, folder: Path, dest: Path, start: dt.datetime | None = None,
                  end: dt.datetime | None = None) -> list[Path]:
    """The Parquet files under datastore `path` (`modelDataCollector/...`) that the local `folder`
    (the same path under the workspace) lacks, downloaded into `dest`: collected windows whose
    local copy is gone are read from the store. With `start` and `end`, only the windows that
    overlap them, and for a collection's path only the days they span are listed."""
    prefix = path.strip("/") + "/"
    out = []
    for listed in _day_prefixes(prefix, start, end):
        for name in store.names(listed):
            rel = name[len(prefix):]
            if not rel.endswith(".parquet") or ".." in rel.split("/") or (folder / rel).exists():
                continue
            window = window_of(tuple(name.split("/"))) if start is not None else None
            if window is not None and not (window[0] < end and window[1] > start):
                continue
            store.get_file(name, dest / rel)
            out.append(dest / rel)
    return out


def _day_prefixes(prefix: str, start: dt.datetime | None, end: dt.datetime | None) -> list[str]:
    """`prefix` itself, or for a collection (`modelDataCollector/ep/dep/coll/`) and a time span
    the prefix of each day folder that may hold its windows (a window lies within its day)."""
    if start is None or end is None or len(prefix.strip("/").split("/")) != 4 or not prefix.startswith(f"{ROOT}/"):
        return [prefix]
    day = start.astimezone(dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    out = []
    while day < end:
        out.append(f"{prefix}{day:%Y/%m/%d}/")
        day += dt.timedelta(days=1)
    return out


def main() -> int:
    return writer.main(uploader=Uploader)


if __name__ == "__main__":
    raise SystemExit(main())
