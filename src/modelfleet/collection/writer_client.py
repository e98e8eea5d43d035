"""The server's end of the collection writer process (writer.py).

Every `FLUSH_EVERY_S` one thread drains every sink's queue (the gateway only appends to them),
packs each sink's entries (PayloadSink.pack: a few buffers, built by C loops), sends them in one
frame down the writer's pipe and waits for its answer: rows written and dropped per sink, which
/metrics shows. The server's own work per collected request is the append and its share of the
packing; parsing bodies, building columns and writing Parquet happen in the writer, which has an
interpreter (and a GIL) of its own.

Nothing is lost to a writer that dies: the batch it was writing is sent again to a new writer,
under the same file names (so a batch half written before is replaced, not doubled). A batch
that kills `ATTEMPTS` writers in a row is dropped and counted (`writer_failed`). At a stop the
queues are sent one last time and the writer exits once it has written them.

With `datastore` (a callable giving the workspace's default datastore document, looked up every
`DATASTORE_EVERY_S`), each frame carries it, and the writer started is `module`: the server
starts modelfleet.datastores.collected, which also uploads the files (docs/monitoring.md).
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from .frames import read_frame, write_frame
from .payload import PayloadSink
from .sink import FLUSH_EVERY_S, Drainer, Written

log = logging.getLogger("modelfleet.monitoring")

ATTEMPTS = 3          # writers a batch may take down before it is dropped
STOP_TIMEOUT_S = 30.0
DATASTORE_EVERY_S = 10.0   # a changed default datastore reaches the writer within this
WRITER = "modelfleet.collection.writer"


class WriterProcess(Drainer):
    def __init__(self, root: Path, every_s: float = FLUSH_EVERY_S, module: str = WRITER, datastore=None):
        super().__init__(every_s)
        self.root = root
        self.module = module
        self._datastore = datastore
        self._doc, self._doc_at = None, float("-inf")
        self.restarts = 0                 # writers started after the first (one died)
        self._proc: subprocess.Popen | None = None
        self._started = 0
        self._lock = threading.Lock()     # one batch in flight: the thread's, remove()'s or stop()'s
        self._tag = uuid.uuid4().hex[:12]   # file names of this server's batches

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _run(self) -> None:
        # the writer starts (and imports pyarrow) with the first sink, so that the first batch
        # does not wait for it while the queues fill
        try:
            with self._lock:
                self._process()
        except OSError as e:
            log.warning("cannot start the collection writer: %s (tried again at the next batch)", e)
        super()._run()

    def stop(self) -> None:
        """Send what is queued, let the writer write it, and end it."""
        super().stop()
        with self._lock:
            self._end()

    def flush(self, sinks: list[PayloadSink] | None = None, stop: bool = False) -> None:
        with self._lock:
            batch = [(s, s.drain()) for s in (sinks if sinks is not None else list(self.sinks.values()))]
            batch = [(s, entries) for s, entries in batch if entries]
            if not batch and (not stop or self._proc is None):
                return
            seq = next(self._seq)
            frame = {"seq": seq, "tag": f"{self._tag}-{seq}", "stop": stop, "datastore": self._default(),
                     "sinks": [(s.endpoint, s.deployment, s.rolling_rate, s.retention_days, s.pack(entries))
                               for s, entries in batch]}
            answer = self._send(frame)
            for (sink, entries), done in zip(batch, answer["sinks"] if answer else [None] * len(batch)):
                if done is None:
                    sink.dropped["writer_failed"] += len(entries)
                    continue
                rows, dropped, failure = done
                sink.count(Written(rows, dropped))
                self._warn(failure)
            for endpoint, deployment, uploaded, failed in (answer or {}).get("uploads", ()):
                sink = self.sinks.get((endpoint, deployment))
                if sink is not None:   # else it was removed meanwhile: nothing shows its figures
                    sink.uploads.update({"uploaded": uploaded, "failed": failed})

    def _default(self):
        """The default datastore's document, looked up at most every DATASTORE_EVERY_S."""
        if self._datastore is None or time.monotonic() - self._doc_at < DATASTORE_EVERY_S:
            return self._doc
        try:
            self._doc = self._datastore()
        except Exception as e:   # an unreadable secret: collection goes on, uploads wait
            log.warning("collected data stays in the workspace's folder: the default datastore cannot be read (%s)", e)
        self._doc_at = time.monotonic()
        return self._doc

    def _send(self, frame: dict) -> dict | None:
        for _ in range(ATTEMPTS):
            proc = self._process()
            try:
                write_frame(proc.stdin, frame)
                answer = read_frame(proc.stdout)
                if answer is None:
                    raise EOFError("the writer closed its output")
                return answer
            except (OSError, EOFError, ValueError) as e:
                log.warning("the collection writer (pid %d) died (%s): starting another, which writes its batch "
                            "again", proc.pid, e)
                self._end()
        log.warning("a batch of collected rows took down %d writers: dropped (writer_failed)", ATTEMPTS)
        return None

    def _process(self) -> subprocess.Popen:
        if self._proc is None:
            self._proc = subprocess.Popen([sys.executable, "-m", self.module, str(self.root)],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True)
            self.restarts += self._started > 0
            self._started += 1
        return self._proc

    def _end(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            proc.stdin.close()
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        with contextlib.suppress(OSError):
            proc.stdout.close()
