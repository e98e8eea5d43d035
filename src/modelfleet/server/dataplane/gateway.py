"""The data plane: authenticate, route endpoint -> deployment -> replica, answer.

No framework or validation layer on the hot path: a request arrives as an exchange
(exchange.py), from the server's HTTP protocol (wire.py) or the raw-ASGI entry, and `handle` is
the one implementation behind both. It reads only the routing snapshots the controller pushes
(never SQL). Answers are the replica's JSON bytes, passed through; every error is JSON with a
request id, never a traceback.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import logging
import os
import random
import time

import orjson

from ...backends.base import ReplicaGone, ReplyStatus, RequestKind
from . import v2_routes
from .admission import Saturated
from .exchange import JSON, AsgiExchange, ClientGone
from .routing import LOCAL, DeploymentSnapshot, EndpointSnapshot, Router, from_loopback
from ..telemetry.hooks import RequestTrace, Telemetry, unknown_endpoint

log = logging.getLogger("modelfleet.gateway")

_STATUS = {ReplyStatus.OK: 200, ReplyStatus.BAD_REQUEST: 400, ReplyStatus.MODEL_ERROR: 424}


# A request whose replica was replaced before it reached the model gets at least this long for
# its retry elsewhere, even past its timeout: it lost its turn to a call that hung.
RETRY_GRACE_S = 0.1


def _expire(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError())


async def _answer(loop: asyncio.AbstractEventLoop, fut: asyncio.Future, deadline: float) -> None:
    """Wait until `fut` is done (not cancelling it), or raise TimeoutError at `deadline`."""
    waiter = loop.create_future()
    fut.add_done_callback(lambda _f: waiter.done() or waiter.set_result(None))
    timer = loop.call_at(deadline, _expire, waiter)
    try:
        await waiter
    finally:
        timer.cancel()


class Gateway:
    # one series of request ids for every gateway of the process: an id tells no workspace apart
    _ids = itertools.count(1)
    _id_prefix = os.urandom(4).hex()

    def __init__(self, router: Router, telemetry: Telemetry | None = None, hides_endpoints: bool = False):
        """`hides_endpoints` (a hosted workspace's): an endpoint the caller may not call answers as
        one that does not exist, as every endpoint of a workspace nobody hosts does (server/app.py)."""
        self.router = router
        self.telemetry = telemetry
        self.hides_endpoints = hides_endpoints
        self._background: set[asyncio.Task] = set()

    def endpoint(self, name: str, ex) -> EndpointSnapshot | None:
        """The endpoint called `name` as this caller may see it (None: not found)."""
        ep = self.router.table.endpoints.get(name)
        if ep is not None and self.hides_endpoints and not self.admits(ep, ex):
            return None
        return ep

    @property
    def ready(self) -> bool:
        """Whether the controller has restored every endpoint since the server started."""
        return self.router.table.ready

    # -- plumbing ----------------------------------------------------------------------------

    @staticmethod
    async def _send(ex, status: int, body: bytes, rid: str, extra=(), content_type: bytes = JSON) -> None:
        trace = ex.trace
        if trace is not None:
            trace.status = status
            trace.bytes_out += len(body)
        await ex.respond(status, body, rid, extra, content_type)

    async def _error(self, ex, status: int, code: str, message: str, rid: str, v2: bool = False,
                     extra=()) -> None:
        # The V2 protocol's error body is {"error": "<message>"}; ours nests code and message.
        err = message if v2 else {"code": code, "message": message}
        body = orjson.dumps({"error": err, "code": code, "request_id": rid} if v2 else
                            {"error": err, "request_id": rid})
        await self._send(ex, status, body, rid, extra)

    # -- routing -----------------------------------------------------------------------------

    async def forward(self, dep: DeploymentSnapshot, kind: RequestKind, body: bytes,
                      header_length: int = 0, trace: RequestTrace | None = None,
                      request_id: str = "") -> tuple[int, bytes | None, str]:
        """(HTTP status, replica payload or None, error message); `trace` gets the time spent
        queued and at the replica; `request_id` goes with the request into the replica's log."""
        loop = asyncio.get_running_loop()
        timeout_s = dep.timeout_s
        arrived = time.perf_counter()  # for the trace; uvloop's loop.time() counts whole ms
        deadline = loop.time() + timeout_s
        admission = dep.admission
        try:
            await admission.admit(deadline)
            if trace is not None:
                trace.queue_s = time.perf_counter() - arrived
        except Saturated:
            return 429, None, f"deployment {dep.name!r} is at capacity and its queue is full"
        except TimeoutError:
            if not self._current(dep).replicas:
                return 503, None, f"deployment {dep.name!r} has no ready replica"
            return 408, None, f"request timed out after {timeout_s * 1000:.0f} ms waiting in queue"
        crashes = 0
        try:
            # When a replica dies before answering (a crash, or the supervisor replacing a hung
            # or stopped one), retry on another one, or on its replacement, until the deadline: a
            # request queued behind a stuck call never reached the model. A request that kills
            # two replicas is the cause, not the victim, and is not retried again. A request that
            # timed out is never retried: custom code need not be idempotent.
            stalled = rescued = False
            while True:
                current = self._current(dep)
                replica = current.pick(loop.time())
                if replica is None:
                    if not stalled and current.replicas and admission.on_stall is not None:
                        stalled = True   # every replica is stuck, overdue or unresponsive: a spare may help
                        admission.on_stall()
                    if loop.time() >= deadline:
                        return 503, None, (f"deployment {dep.name!r} has no replica free to answer (each is in a "
                                           "model call far older than usual, or missed a liveness probe)"
                                           if current.replicas else f"deployment {dep.name!r} has no ready replica")
                    await asyncio.sleep(0.01)
                    continue
                if trace is not None:
                    trace.replica = replica.id
                try:
                    sent = time.perf_counter()
                    fut = replica.send(dep.model_key, kind, body, header_length, request_id)
                    waiter = loop.create_future()   # inline, not _answer: one coroutine less per request
                    fut.add_done_callback(lambda _f, w=waiter: w.done() or w.set_result(None))
                    timer = loop.call_at(deadline, _expire, waiter)
                    try:
                        await waiter
                    except TimeoutError:
                        if fut.done():
                            pass   # answered, or its replica gone, in the same moment: that counts
                        elif rescued or replica.overdue_at > loop.time() or not replica.queued_behind(fut):
                            raise
                        else:  # it never reached the model: the call ahead of it outlived its own
                            # request's timeout, and the supervisor is replacing that replica
                            rescued, deadline = True, loop.time() + RETRY_GRACE_S
                            await _answer(loop, fut, deadline)
                    finally:
                        timer.cancel()
                    status, payload = fut.result()
                    if trace is not None:
                        trace.model_s = time.perf_counter() - sent
                except ReplicaGone as gone:
                    crashes += gone.reached_model   # a request queued behind a hung call is no cause
                    if crashes >= 2:
                        return 502, None, "the replica exited while handling this request (twice)"
                    if not rescued and deadline - loop.time() < RETRY_GRACE_S:
                        rescued, deadline = True, loop.time() + RETRY_GRACE_S   # time for the retry
                    continue
                except (TimeoutError, asyncio.CancelledError) as e:
                    # The deployment's slot is free again; the replica counts the request as
                    # late until it answers, and routing sends it nothing new meanwhile (the
                    # supervisor probes it, and replaces it if its model call is stuck).
                    replica.give_up(fut)
                    if isinstance(e, asyncio.CancelledError):
                        raise
                    return 408, None, f"request timed out after {timeout_s * 1000:.0f} ms"
                return _STATUS.get(status, 502), payload, ""
        finally:
            admission.release()

    def _current(self, dep: DeploymentSnapshot) -> DeploymentSnapshot:
        """The newest snapshot of `dep` (replicas change while a request waits)."""
        ep = self.router.table.endpoints.get(dep.endpoint)
        return (ep.deployments.get(dep.name) if ep is not None else None) or dep

    def _mirror(self, dep: DeploymentSnapshot, kind: RequestKind, body: bytes, header_length: int,
                request_id: str) -> None:
        """Copy a request to the mirror deployment; never queued, never awaited, answer dropped."""
        if not dep.replicas or not dep.admission.has_capacity():
            return
        task = asyncio.ensure_future(self.forward(dep, kind, body, header_length, request_id=request_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        if self.telemetry is not None:
            metrics = self.telemetry.metrics
            task.add_done_callback(lambda t: t.cancelled() or t.exception() or
                                   metrics.mirror_done(dep.endpoint, dep.name, t.result()[0]))

    async def serve(self, ex, ep: EndpointSnapshot, target: str | None, kind: RequestKind, rid: str) -> None:
        v2 = kind == RequestKind.V2_INFER
        headers = ex.headers
        trace = ex.trace
        if trace is not None:
            trace.endpoint = ep.name
        if not self.hides_endpoints and not self.admits(ep, ex):   # else endpoint() checked it
            return await self._error(ex, 401, "unauthorized",
                                     "missing or invalid key: send Authorization: Bearer <key>", rid, v2)
        target = target or (headers.get(b"azureml-model-deployment") or b"").decode("latin-1") or None
        if target is not None:
            dep = ep.deployments.get(target)
            if dep is None:
                return await self._error(ex, 404, "not_found",
                                         f"deployment {target!r} not found on endpoint {ep.name!r}", rid, v2)
        else:
            dep = ep.choose()
            if dep is None:
                return await self._error(ex, 503, "no_traffic",
                                         f"endpoint {ep.name!r} has no deployment taking traffic", rid, v2)
        if trace is not None:
            trace.deployment = dep.name
        length = headers.get(b"content-length")
        max_body = dep.settings.max_body_bytes
        if length is not None and length.isdigit() and int(length) > max_body:
            return await self._error(ex, 413, "payload_too_large",
                                     f"request body is larger than {max_body} bytes", rid, v2)
        try:
            body = await ex.body(max_body)
        except ClientGone:
            return
        if body is None:
            return await self._error(ex, 413, "payload_too_large",
                                     f"request body is larger than {max_body} bytes", rid, v2)
        if trace is not None:
            trace.bytes_in = len(body)
        header_length = 0
        if v2:  # the JSON header length of a V2 request with binary tensors (0: none)
            hlen = headers.get(b"inference-header-content-length", b"0")
            header_length = int(hlen) if hlen.isdigit() and len(hlen) < 10 else 0
        if target is None and ep.mirror is not None and random.random() < ep.mirror_pct:
            self._mirror(ep.mirror, kind, body, header_length, rid)
        status, payload, message = await self.forward(dep, kind, body, header_length, trace, rid)
        if payload is None:
            code = {408: "timeout", 429: "too_many_requests", 503: "unavailable"}.get(status, "replica_error")
            return await self._error(ex, status, code, message, rid, v2)
        if status == 200:
            if v2:
                answer, content_type, extra = v2_routes.unframe(payload)
                await self._send(ex, 200, answer, rid, (*dep.header, *extra), content_type)
            else:
                await self._send(ex, 200, payload, rid, dep.header)
            if dep.collector is not None:
                dep.collector.offer(rid, body, payload, dep.metadata, headers, header_length if v2 else None)
            return
        err = orjson.loads(payload)
        if v2:
            err = {"error": err["error"]["message"], "code": err["error"]["code"]}
        err["request_id"] = rid
        await self._send(ex, status, orjson.dumps(err), rid, dep.header)

    def admits(self, ep: EndpointSnapshot, ex) -> bool:
        """Whether a request may reach `ep`: a valid key, an open endpoint, or a client on this
        machine calling a --local endpoint."""
        return (ep.auth_mode == "none" or self._authorized(ep, ex.headers.get(b"authorization"))
                or (ep.auth_mode == LOCAL and from_loopback(ex.client, ex.headers)))

    @staticmethod
    def _authorized(ep: EndpointSnapshot, value: bytes | None) -> bool:
        if not value or value[:7].lower() != b"bearer ":
            return False
        given = value[7:].strip()
        ok = False
        for key in ep.keys:  # compare with every key so timing does not tell which one matched
            ok |= hmac.compare_digest(given, key)
        return ok

    # -- entries -------------------------------------------------------------------------------

    async def __call__(self, scope, receive, send) -> None:
        """The raw-ASGI entry (in-process tests, any ASGI server)."""
        await self.handle(AsgiExchange(scope, receive, send))

    async def handle(self, ex) -> None:
        """Answer one data-plane request (exchange.py): the entry of every transport."""
        rid = f"{self._id_prefix}-{next(self._ids):x}"
        telemetry = self.telemetry
        trace = None
        if telemetry is not None:
            trace = ex.trace = RequestTrace(time.perf_counter())
        try:
            await self._dispatch(ex, rid)
        except Exception:  # never a traceback to the client
            log.exception("gateway error (request %s)", rid)
            if not ex.responded:
                await self._error(ex, 500, "internal_error", "internal error", rid)
        finally:
            if trace is not None and trace.endpoint is not None:
                try:
                    telemetry.request_done(trace, rid, ex.method, ex.path, ex.client)
                except Exception:
                    log.exception("request hook failed (request %s)", rid)

    async def _dispatch(self, ex, rid: str) -> None:
        parts = ex.path.strip("/").split("/")
        method = ex.method
        if parts[0] == "endpoints":
            if len(parts) != 3 or parts[2] != "score":
                return await self._error(ex, 404, "not_found", "use POST /endpoints/{endpoint}/score", rid)
            if method != "POST":
                return await self._error(ex, 405, "method_not_allowed", "use POST", rid, extra=[(b"allow", b"POST")])
            ep = self.endpoint(parts[1], ex)
            if ep is None:
                unknown_endpoint(ex.trace)
                return await self._error(ex, 404, "not_found", f"endpoint {parts[1]!r} not found", rid)
            return await self.serve(ex, ep, None, RequestKind.SCORE, rid)
        return await v2_routes.dispatch(self, parts, ex, rid)
