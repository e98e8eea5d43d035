"""The inline lane: a scoring request answered from callbacks, with no task.

Most scoring requests need no waiting in the gateway: the whole body is here, the key is valid,
the deployment has a free slot and a replica free to take it. For those the server's protocol
(wire.py) calls `InlineLane.start` as soon as the request is parsed: it takes the slot, sends the
request, and the reply's done-callback writes the answer. No task, coroutine chain, waiter
future or timer per request: those were a third of the gateway's Python work per request
(docs/benchmarks.md). Everything else goes to `Gateway.handle`, the one full implementation, and
so does an inline request whose replica went away before answering (it is retried elsewhere) or
whose deadline passed (408; a grace period when it never reached the model): `Gateway.forward`
takes over its wait (`Gateway.resume`).

Deadlines are kept in one dict swept every SWEEP_S instead of a timer per request: an inline
request's timeout is noticed up to SWEEP_S late.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from ...backends.base import ReplicaGone, RequestKind
from . import v2_routes
from .exchange import HTTP_STATUS

if TYPE_CHECKING:
    from .routing import DeploymentSnapshot

log = logging.getLogger("modelfleet.gateway")

SWEEP_S = 0.01
_SCORE, _V2 = RequestKind.SCORE, RequestKind.V2_INFER


def route(method: str, path: str) -> tuple[str, str | None, RequestKind] | None:
    """(endpoint, deployment or None, kind) of a POST to a score or V2 infer path; None for
    any other request (the gateway's full dispatch answers it)."""
    if method != "POST":
        return None
    if path.startswith("/endpoints/"):
        name, slash, rest = path[11:].partition("/")
        return (name, None, _SCORE) if slash and rest == "score" else None
    if path.startswith("/v2/models/"):
        parts = path[11:].split("/")
        if len(parts) == 2 and parts[1] == "infer":
            return parts[0], None, _V2
        if len(parts) == 4 and parts[1] == "versions" and parts[3] == "infer":
            return parts[0], parts[2], _V2
    return None


class InlineCall:
    """One request the inline lane sent: what answers it, and what `Gateway.forward` needs to
    take over its wait."""
    __slots__ = ("lane", "ex", "rid", "trace", "dep", "kind", "body", "header_length", "replica", "fut",
                 "deadline", "sent_at", "handed_over")

    def __init__(self, lane: "InlineLane", ex, rid: str, dep: "DeploymentSnapshot", kind: RequestKind,
                 body: bytes, header_length: int, replica, deadline: float):
        self.lane, self.ex, self.rid, self.trace = lane, ex, rid, ex.trace
        self.dep, self.kind, self.body, self.header_length = dep, kind, body, header_length
        self.replica, self.deadline = replica, deadline
        self.fut: asyncio.Future | None = None
        self.sent_at = 0.0
        self.handed_over = False

    def replied(self, fut: asyncio.Future) -> None:
        if self.handed_over:
            return   # the full path waits for it now
        lane = self.lane
        lane.inflight.pop(self, None)
        if fut.cancelled() or fut.exception() is not None:
            lane.hand_over(self)   # the replica went away: forward retries elsewhere
            return
        self.dep.admission.release()
        gateway, ex, rid, trace = lane.gateway, self.ex, self.rid, self.trace
        try:
            status, payload = fut.result()
            if trace is not None:
                trace.model_s = time.perf_counter() - self.sent_at
            status, body, extra, content_type = gateway.outcome(ex, self.dep, self.kind, rid, self.body,
                                                                self.header_length, HTTP_STATUS.get(status, 502),
                                                                payload, "")
            if trace is not None:
                trace.status = status
                trace.bytes_out += len(body)
            if not ex.writable:   # the client reads slowly: wait for its buffer like any answer
                gateway.spawn(gateway.finish(ex, rid, ex.respond(status, body, rid, extra, content_type)))
                return
            ex.write(status, body, rid, extra, content_type)
        except Exception:  # never a traceback to the client
            log.exception("gateway error (request %s)", rid)
            if not ex.responded:
                failed = gateway._error(ex, 500, "internal_error", "internal error", rid)
                gateway.spawn(gateway.finish(ex, rid, failed))
                return
        gateway.done(ex, rid)


class InlineLane:
    """A gateway's inline requests in flight, and the sweep of their deadlines."""

    def __init__(self, gateway):
        """`gateway`: the Gateway whose requests these are (gateway.py, which imports this)."""
        self.gateway = gateway
        self.inflight: dict[InlineCall, None] = {}   # in the order they were sent
        self._sweep_timer: asyncio.TimerHandle | None = None

    def start(self, ex) -> bool:
        """Send `ex` (its whole body received) to a replica now, if it needs no waiting; False
        (nothing done, nothing counted) when the full path must answer it."""
        found = route(ex.method, ex.path)
        if found is None:
            return False
        name, target, kind = found
        gateway = self.gateway
        ep = gateway.endpoint(name, ex)
        if ep is None or ep.mirror is not None or not (gateway.hides_endpoints or gateway.admits(ep, ex)):
            return False
        headers = ex.headers
        target = gateway.named(target, headers)
        dep = ep.deployments.get(target) if target is not None else ep.choose()
        if dep is None:
            return False
        body = ex.received()
        if len(body) > dep.settings.max_body_bytes:
            return False
        loop = asyncio.get_running_loop()
        now = loop.time()
        replica = dep.pick(now)
        if replica is None or not dep.admission.take():
            return False
        header_length = v2_routes.header_length(headers) if kind is _V2 else 0
        rid = gateway.arrived(ex)
        trace = ex.trace
        if trace is not None:
            trace.endpoint, trace.deployment, trace.replica, trace.bytes_in = ep.name, dep.name, replica.id, len(body)
        call = InlineCall(self, ex, rid, dep, kind, body, header_length, replica, now + dep.timeout_s)
        try:
            call.sent_at = time.perf_counter()
            call.fut = replica.send(dep.model_key, kind, body, header_length, rid)
        except ReplicaGone:
            call.fut = None
            self.hand_over(call)   # closed since it was picked: forward picks another
            return True
        call.fut.add_done_callback(call.replied, context=gateway.context)
        self.inflight[call] = None
        if self._sweep_timer is None:
            self._sweep_timer = loop.call_later(SWEEP_S, self._sweep)
        return True

    def hand_over(self, call: InlineCall) -> None:
        """`Gateway.forward` waits for `call` from here on (it holds the slot it took)."""
        call.handed_over = True
        self.gateway.spawn(self.gateway.finish(call.ex, call.rid, self.gateway.resume(call)))

    def _sweep(self) -> None:
        self._sweep_timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        for call in [c for c in self.inflight if c.deadline <= now]:
            del self.inflight[call]
            self.hand_over(call)
        if self.inflight:
            self._sweep_timer = loop.call_later(SWEEP_S, self._sweep)
