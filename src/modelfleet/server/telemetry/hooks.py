"""What the server tells about itself: the two hooks the data and control planes call, fanning
out to the request statistics (metrics, live figures), the access log and the event feed.

- `request_done(trace)`: the gateway, once per scoring request, after the answer went out.
- `replica_changed(replica, old, new, reason)`: a listener of `replicas.transition`, the one
  place every replica state change goes through.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import logging
import time
from pathlib import Path
from typing import Callable

from ...files.logfmt import iso_time
from .access_log import AccessLog
from ..http import logs as replica_logs
from .metrics import Metrics
from ..control.replicas import Replica, ReplicaState as S, Roster

log = logging.getLogger("modelfleet.telemetry")

EVENTS = 200

# Whose work is running (a workspace's name): set where a workspace's requests, start and stop
# begin; the tasks and threads they start inherit it. None: the server's own.
WORKSPACE: contextvars.ContextVar[str | None] = contextvars.ContextVar("modelfleet_workspace", default=None)


@contextlib.contextmanager
def working_for(workspace: str):
    """Mark what runs in the block, and what it starts, as `workspace`'s work (its warnings go to
    that workspace's event feed)."""
    token = WORKSPACE.set(workspace)
    try:
        yield
    finally:
        WORKSPACE.reset(token)


class RequestTrace:
    """What the gateway learns about one scoring request on its way through."""
    __slots__ = ("start", "endpoint", "deployment", "replica", "status", "queue_s", "model_s", "bytes_in",
                 "bytes_out")

    def __init__(self, start: float):
        self.start = start          # time.perf_counter() at arrival
        self.endpoint = None        # set once the path names an endpoint: only then is it recorded
        self.deployment = ""
        self.replica = ""
        self.status = 500
        self.queue_s = 0.0
        self.model_s = 0.0
        self.bytes_in = 0
        self.bytes_out = 0


def unknown_endpoint(trace: RequestTrace | None) -> None:
    """A scoring request for an endpoint that does not exist is still recorded, under endpoint
    "" (a name taken from the URL would let any client mint new metric series)."""
    if trace is not None:
        trace.endpoint = ""


class Telemetry:
    def __init__(self, metrics: Metrics | None = None, access_log: AccessLog | None = None,
                 monotonic: Callable[[], float] = time.monotonic, roster: Roster | None = None):
        self.metrics = metrics or Metrics()
        self.stats = self.metrics.stats
        self.access_log = access_log or AccessLog(None)
        self.events: collections.deque[dict] = collections.deque(maxlen=EVENTS)
        self.monotonic = monotonic              # the controller's clock (replica start times)
        self.roster = roster or Roster()        # the controller's replicas not yet stopped

    # -- data plane ------------------------------------------------------------------------------

    def request_done(self, trace: RequestTrace, rid: str, method: str, path: str,
                     client: tuple[str, int] | None) -> None:
        now = time.time()
        total = time.perf_counter() - trace.start
        self.stats.record(trace.endpoint, trace.deployment, trace.status, now, total, trace.queue_s,
                          trace.model_s, trace.bytes_in, trace.bytes_out)
        self.access_log.record((now, rid, trace.endpoint, trace.deployment, trace.replica, method,
                                path, trace.status, total, trace.queue_s, trace.model_s,
                                trace.bytes_in, trace.bytes_out, client[0] if client else None))

    # -- control plane ---------------------------------------------------------------------------

    def replica_changed(self, r: Replica, old: S | None, new: S, reason: str) -> None:
        if old is None:
            r.handle.on_batch = self.metrics.batch
            r.handle.on_evicted = self.metrics.model_evicted   # a shared replica's model leaves and comes back
            r.handle.on_reloaded = self.metrics.model_loaded
        if new is S.STOPPED:
            self._prune_logs(r)
        if old is S.STARTING and new is S.READY:
            load_ms = r.handle.info.get("load_ms")
            self.metrics.replica_ready(r.endpoint, r.deployment, max(0.0, self.monotonic() - r.started_at),
                                       None if load_ms is None else load_ms / 1000.0)
        elif old is S.READY and new is S.FAILED:
            self.metrics.replica_restarted(r.endpoint, r.deployment)
        self.event("replica", f"{r.id}: {old.value if old else 'new'} -> {new.value}"
                   + (f" ({reason})" if reason else ""), endpoint=r.endpoint, deployment=r.deployment)

    def _prune_logs(self, r: Replica) -> None:
        log_path = r.handle.describe().get("log")
        if log_path:
            live = {x.id for x in self.roster.of(r.endpoint, r.deployment)}
            replica_logs.prune(Path(log_path).parent, live=live)

    def event(self, kind: str, message: str, **where) -> None:
        self.events.append({"time": iso_time(time.time()), "kind": kind, "message": message, **where})

    # -- sources read at scrape time ---------------------------------------------------------------

    def replica_usage(self):
        for r in self.roster:
            if r.state is S.READY or r.state is S.DRAINING:
                yield r.endpoint, r.deployment, r.id, r.handle.cpu_seconds(), r.handle.memory_bytes()

    def prune(self, live: set[tuple[str, str]]) -> None:
        """Forget deployments (and endpoints) that no longer exist: their names may come back,
        and a server that sees many come and go must not keep them all."""
        endpoints = {ep for ep, _ in live}
        for ep, dep in list(self.stats.keys):
            if (ep, dep) not in live and ep and (dep or ep not in endpoints):
                self.metrics.forget(ep, dep)

    def close(self) -> None:
        self.access_log.close()


class EventLog(logging.Handler):
    """Server warnings (a failed rollout, a replica that died) as one workspace's dashboard events:
    those logged by its own work (`WORKSPACE`), and with `the_server's`, those of no workspace's
    (the primary's feed), so that no workspace's feed shows another's."""

    def __init__(self, telemetry: Telemetry, workspace: str, the_servers: bool = False):
        super().__init__(logging.WARNING)
        self.telemetry = telemetry
        self.workspace = workspace
        self.the_servers = the_servers

    def filter(self, record: logging.LogRecord) -> bool:
        whose = WORKSPACE.get()
        return (whose == self.workspace or (whose is None and self.the_servers)) and super().filter(record)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.telemetry.event(record.levelname.lower(), record.getMessage().splitlines()[0][:500])
        except Exception:
            self.handleError(record)
