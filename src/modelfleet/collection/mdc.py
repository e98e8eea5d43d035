"""The receiver that `azureml-ai-monitoring`'s Collector posts to, inside a replica running score.py.

The package, as published, reads `AZUREML_MDC_CONFIG_PATH` (which collections are enabled, and
their sampling) and posts each collected DataFrame as JSON records to
`http://AZUREML_MDC_HOST:AZUREML_MDC_PORT/modeldata/log` from its own worker thread, with the
collection in `ce-type: azureml.inference.NAME` and the correlation id in `ce-x-request-id`. Before
init() runs, the replica writes that file, listens on 127.0.0.1 (a free port) and sets the three
variables; the rows go to the same sink and files as payload collection. Nothing here is on the
request path: the package queues in memory and posts later.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson

from .sink import Flusher, Sink

log = logging.getLogger("modelfleet.monitoring")
REPLICA_ENV = "FLEET_DATA_COLLECTOR"
PREFIX = "azureml.inference."


class Receiver:
    def __init__(self, cfg: dict):
        self.collections = set(cfg["collections"])
        self.sink = Sink(Path(cfg["root"]), cfg["endpoint"], cfg["deployment"], convert, cfg["rolling_rate"],
                         cfg["retention_days"])
        self.flusher = Flusher()
        self.flusher.add(self.sink)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):   # noqa: N802 (http.server's name)
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                name = (self.headers.get("ce-type") or "").removeprefix(PREFIX).lower()
                if self.path == "/modeldata/log" and name in receiver.collections:
                    receiver.sink.put((time.time(), name, self.headers.get("ce-x-request-id") or
                                       self.headers.get("trace-id") or "", body))
                    self.send_response(200)
                else:
                    self.send_response(404)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):   # the replica log is for the model's lines
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, name="mdc-receiver", daemon=True).start()

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def loaded(self) -> None:
        """init() has run: the package has read its configuration file, which can go."""
        path = os.environ.get("AZUREML_MDC_CONFIG_PATH")
        if path:
            with contextlib.suppress(OSError):
                os.unlink(path)


def convert(entry: tuple) -> dict[str, list[dict]]:
    t, name, correlation, body = entry
    records = orjson.loads(body)
    if isinstance(records, dict):
        records = [records]
    return {name: [{"correlationid": correlation, "time": t, **r} for r in records]}


def start_if_configured() -> Receiver | None:
    """Called by a replica before its model loads (score.py's init() creates the Collector)."""
    raw = os.environ.get(REPLICA_ENV)
    if not raw:
        return None
    cfg = json.loads(raw)
    receiver = Receiver(cfg)
    fd, path = tempfile.mkstemp(prefix="mdc-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump({"runMode": "cloud", "collections": {
            n: {"enabled": True, "sampleRatePercentage": r * 100} for n, r in cfg["collections"].items()}}, f)
    os.environ.update({"AZUREML_MDC_CONFIG_PATH": path, "AZUREML_MDC_HOST": "127.0.0.1",
                       "AZUREML_MDC_PORT": str(receiver.port)})
    print(f"data collector: azureml-ai-monitoring posts to 127.0.0.1:{receiver.port} "
          f"({', '.join(sorted(receiver.collections))})", flush=True)
    return receiver
