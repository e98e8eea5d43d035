"""The access log: one JSON line per scoring request, in logs/access.log, rotated by size.

    {"time": "2026-11-26T07:37:08.123Z", "request_id": "9f1c2ab0-1a", "endpoint": "iris",
     "deployment": "blue", "replica": "blue-785dd7-1", "method": "POST",
     "path": "/endpoints/iris/score", "status": 200, "latency_ms": 1.234, "queue_ms": 0.012,
     "model_ms": 0.981, "bytes_in": 52, "bytes_out": 6, "client": "127.0.0.1"}

The event loop only appends a tuple to a queue; a writer thread formats the lines and writes
them through a RotatingFileHandler five times a second, so a slow or full disk never stalls
the gateway. The newest
entries are also kept in memory for the dashboard.
"""

from __future__ import annotations

import collections
import contextvars
import contextlib
import logging
import logging.handlers
import queue
import threading
import time
from pathlib import Path

import orjson

from ...files.logfmt import iso_second

RECENT = 200
FLUSH_EVERY_S = 0.2
CHUNK_ROWS = 200   # lines formatted between two releases of the GIL (about half a millisecond)
FIELDS = ("time", "request_id", "endpoint", "deployment", "replica", "method", "path", "status", "latency_ms",
          "queue_ms", "model_ms", "bytes_in", "bytes_out", "client")


def entry(row: tuple) -> dict:
    """A queued row as the JSON object written to the log."""
    return orjson.loads(line(row))


# Names are validated (endpoint, deployment, replica), ids are hex and methods are HTTP tokens, so
# only the path and the client need escaping (each escaped once: they repeat); one %-template is
# the cheapest way to the line (the writer thread formats thousands a second, holding the GIL).
_LINE = ('{"time":"%s.%03dZ","request_id":"%s","endpoint":"%s","deployment":"%s","replica":"%s","method":"%s",'
         '"path":%s,"status":%d,"latency_ms":%.3f,"queue_ms":%.3f,"model_ms":%.3f,"bytes_in":%d,"bytes_out":%d,'
         '"client":%s}')
_ESCAPED: dict = {}


def _escape(value) -> str:
    """`value` as JSON, kept for the next line (a miss of `_ESCAPED`)."""
    if len(_ESCAPED) >= 4096:   # paths come from clients: keep the cache bounded
        _ESCAPED.clear()
    text = _ESCAPED[value] = orjson.dumps(value).decode()
    return text


def line(row: tuple, escaped: dict = _ESCAPED) -> str:
    t, rid, endpoint, deployment, replica, method, path, status, total_s, queue_s, model_s, nin, nout, client = row
    return _LINE % (iso_second(int(t)), int(t * 1000) % 1000, rid, endpoint, deployment, replica, method,
                    escaped.get(path) or _escape(path), status, total_s * 1000, queue_s * 1000, model_s * 1000, nin,
                    nout, escaped.get(client) or _escape(client))


class AccessLog:
    def __init__(self, path: Path | None, max_bytes: int = 64 * 2**20, backups: int = 5):
        """`path` None: nothing is written, the recent entries are still kept."""
        self.path = path
        self.recent: collections.deque[tuple] = collections.deque(maxlen=RECENT)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._handler = logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes, backupCount=backups,
                                                                 encoding="utf-8", delay=True)
            self._handler.setFormatter(logging.Formatter("%(message)s"))
            # in the context it was made in: its warnings are the workspace's (hooks.WORKSPACE)
            self._thread = threading.Thread(target=contextvars.copy_context().run, args=(self._write,),
                                            name="access-log", daemon=True)
            self._thread.start()

    def record(self, row: tuple) -> None:
        """Called once per request on the event loop: two appends, nothing else."""
        self.recent.append(row)
        if self._thread is not None:
            self._queue.put(row)

    def _write(self) -> None:
        # Wakes up every FLUSH_EVERY_S rather than on each request: a thread woken per request
        # would take the GIL from the event loop thousands of times a second.
        while True:
            stopping = self._stop.wait(FLUSH_EVERY_S)
            rows = []
            with contextlib.suppress(queue.Empty):
                while True:
                    rows.append(self._queue.get_nowait())
            if rows:
                parts = []
                for i in range(0, len(rows), CHUNK_ROWS):
                    parts.append("\n".join(map(line, rows[i:i + CHUNK_ROWS])))
                    # The GIL back to the event loop between chunks: it would otherwise wait up to
                    # Python's switch interval (5 ms) for it, stalling every request meanwhile.
                    time.sleep(0)
                text = "\n".join(parts)
                # A full or read-only disk loses log lines, never requests.
                with contextlib.suppress(Exception):
                    self._handler.handle(logging.makeLogRecord({"msg": text}))
            if stopping:
                return

    def recent_entries(self, n: int = 50) -> list[dict]:
        return [entry(r) for r in list(self.recent)[-n:]]

    def close(self) -> None:
        """Write what is queued, then stop the writer thread."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=10)
            self._handler.close()
            self._thread = None


_VERB_METHOD = {"read": "GET", "write": "PUT", "delete": "DELETE", "action": "POST"}


def activity_line(entry: dict) -> str:
    """An activity log entry in the access log's line format (the same fields, so one shipper
    reads both; a scoring request's figures are 0), with who did it and the Azure action."""
    verb = entry["operation"].rsplit("/", 1)[-1]
    row = {"time": entry["at"], "request_id": entry["correlation_id"], "endpoint": "", "deployment": "",
           "replica": "", "method": _VERB_METHOD.get(verb, "POST"), "path": f"/api/{entry['resource']}",
           "status": entry["http_status"], "latency_ms": 0.0, "queue_ms": 0.0, "model_ms": 0.0, "bytes_in": 0,
           "bytes_out": 0, "client": entry["client"], "caller": entry["caller"], "operation": entry["operation"],
           "result": entry["status"]}
    return orjson.dumps(row).decode()
