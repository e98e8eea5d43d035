"""The data plane: authenticate, route endpoint -> deployment -> replica, answer.

No framework or validation layer on the hot path: a request arrives as an exchange
(exchange.py), from the server's HTTP protocol (wire.py) or the raw-ASGI entry, and `handle` is
the one implementation behind both. It reads only the routing snapshots the controller pushes
(never SQL). Answers are the replica's JSON bytes, passed through; every error is JSON with a
request id, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextvars
import hmac
import itertools
import logging
import os
import random
import time

import orjson

from ...backends.base import ReplicaGone, RequestKind
from . import v2_routes
from .admission import Saturated
from .exchange import HTTP_STATUS, JSON, AsgiExchange, ClientGone
from .inline import InlineCall, InlineLane
from .routing import LOCAL, DeploymentSnapshot, EndpointSnapshot, Router, from_loopback
from ..telemetry.hooks import WORKSPACE, RequestTrace, Telemetry, unknown_endpoint

log = logging.getLogger("modelfleet.gateway")

_CODES = {408: "timeout", 429: "too_many_requests", 503: "unavailable"}


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

    def __init__(self, router: Router, telemetry: Telemetry | None = None, hides_endpoints: bool = False,
                 workspace: str | None = None):
        """`hides_endpoints` (a hosted workspace's): an endpoint the caller may not call answers as
        one that does not exist, as every endpoint of a workspace nobody hosts does (server/app.py).
        `workspace`: whose requests these are (its warnings go to its event feed)."""
        self.router = router
        self.telemetry = telemetry
        self.hides_endpoints = hides_endpoints
        # what the gateway's callbacks and tasks run in: marked as the workspace's work
        self.context = contextvars.copy_context()
        self.context.run(WORKSPACE.set, workspace)
        self.inline = InlineLane(self)
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
        await self._send(ex, status, error_body(code, message, rid, v2), rid, extra)

    # -- routing -----------------------------------------------------------------------------

    async def forward(self, dep: DeploymentSnapshot, kind: RequestKind, body: bytes,
                      header_length: int = 0, trace: RequestTrace | None = None,
                      request_id: str = "", call: InlineCall | None = None) -> tuple[int, bytes | None, str]:
        """(HTTP status, replica payload or None, error message); `trace` gets the time spent
        queued and at the replica; `request_id` goes with the request into the replica's log.
        `call`: a request the inline lane admitted and sent; its wait for the reply goes on here."""
        loop = asyncio.get_running_loop()
        timeout_s = dep.timeout_s
        admission = dep.admission
        replica, fut = None, None
        if call is None:
            arrived = time.perf_counter()  # for the trace; uvloop's loop.time() counts whole ms
            deadline = loop.time() + timeout_s
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
        else:
            replica, fut, deadline, sent = call.replica, call.fut, call.deadline, call.sent_at
        crashes = 0
        try:
            # When a replica dies before answering (a crash, or the supervisor replacing a hung
            # or stopped one), retry on another one, or on its replacement, until the deadline: a
            # request queued behind a stuck call never reached the model. A request that kills
            # two replicas is the cause, not the victim, and is not retried again. A request that
            # timed out is never retried: custom code need not be idempotent.
            stalled = rescued = False
            while True:
                if fut is None:
                    current = self._current(dep)
                    replica = current.pick(loop.time())
                    if replica is None:
                        if (not stalled and admission.on_stall is not None
                                and any(not r.closed for r in current.replicas)):
                            # every open replica is stuck, overdue or unresponsive: a spare may help (one
                            # that exited is the supervisor's to restart, and the routing drops it soon)
                            stalled = True
                            admission.on_stall()
                        if loop.time() >= deadline:
                            return 503, None, (f"deployment {dep.name!r} has no replica free to answer (each is in "
                                               "a model call far older than usual, or missed a liveness probe)"
                                               if current.replicas else f"deployment {dep.name!r} has no ready replica")
                        await asyncio.sleep(0.01)
                        continue
                    if trace is not None:
                        trace.replica = replica.id
                try:
                    if fut is None:
                        sent = time.perf_counter()
                        fut = replica.send(dep.model_key, kind, body, header_length, request_id)
                    waiter = loop.create_future()   # written out, not _answer: one coroutine less per request
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
                    fut = None
                    if gone.reached_model and not rescued and loop.time() >= deadline:
                        # it timed out in the model call the replica was killed for (before its
                        # deadline was noticed: the inline lane sweeps them): not retried
                        return 408, None, f"request timed out after {timeout_s * 1000:.0f} ms"
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
                return HTTP_STATUS.get(status, 502), payload, ""
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
        task = self.spawn(self.forward(dep, kind, body, header_length, request_id=request_id))
        if self.telemetry is not None:
            metrics = self.telemetry.metrics
            task.add_done_callback(lambda t: t.cancelled() or t.exception() or
                                   metrics.mirror_done(dep.endpoint, dep.name, t.result()[0]))

    def spawn(self, coro) -> asyncio.Task:
        """Run `coro` as the workspace's work, kept until it ends (nobody awaits it)."""
        task = asyncio.get_running_loop().create_task(coro, context=self.context.copy())
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    @staticmethod
    def named(target: str | None, headers: dict) -> str | None:
        """The deployment a request names: in its path (V2's version), else in Azure's header."""
        return target or (headers.get(b"azureml-model-deployment") or b"").decode("latin-1") or None

    async def serve(self, ex, ep: EndpointSnapshot, target: str | None, kind: RequestKind, rid: str) -> None:
        v2 = kind == RequestKind.V2_INFER
        headers = ex.headers
        trace = ex.trace
        if trace is not None:
            trace.endpoint = ep.name
        if not self.hides_endpoints and not self.admits(ep, ex):   # else endpoint() checked it
            return await self._error(ex, 401, "unauthorized",
                                     "missing or invalid key: send Authorization: Bearer <key>", rid, v2)
        target = self.named(target, headers)
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
        header_length = v2_routes.header_length(headers) if v2 else 0
        if target is None and ep.mirror is not None and random.random() < ep.mirror_pct:
            self._mirror(ep.mirror, kind, body, header_length, rid)
        await self._send_outcome(ex, dep, kind, rid, body, header_length,
                                 await self.forward(dep, kind, body, header_length, trace, rid))

    async def resume(self, call: InlineCall) -> None:
        """An inline request's wait, when its replica went away or its deadline passed."""
        await self._send_outcome(call.ex, call.dep, call.kind, call.rid, call.body, call.header_length,
                                 await self.forward(call.dep, call.kind, call.body, call.header_length,
                                                    call.trace, call.rid, call))

    async def _send_outcome(self, ex, dep: DeploymentSnapshot, kind: RequestKind, rid: str, body: bytes,
                            header_length: int, forwarded: tuple[int, bytes | None, str]) -> None:
        status, answer, extra, content_type = self.outcome(ex, dep, kind, rid, body, header_length, *forwarded)
        await self._send(ex, status, answer, rid, extra, content_type)

    def outcome(self, ex, dep: DeploymentSnapshot, kind: RequestKind, rid: str, body: bytes, header_length: int,
                status: int, payload: bytes | None, message: str) -> tuple[int, bytes, tuple, bytes]:
        """The answer to a request forwarded to `dep`: (status, body, extra headers, content type);
        a successful one is offered to the deployment's data collection."""
        v2 = kind == RequestKind.V2_INFER
        if payload is None:
            return status, error_body(_CODES.get(status, "replica_error"), message, rid, v2), (), JSON
        if status == 200:
            if dep.collector is not None:
                dep.collector.offer(rid, body, payload, dep.metadata, ex.headers, header_length if v2 else None)
            if v2:
                answer, content_type, extra = v2_routes.unframe(payload)
                return 200, answer, (*dep.header, *extra), content_type
            return 200, payload, dep.header, JSON
        err = orjson.loads(payload)
        if v2:
            err = {"error": err["error"]["message"], "code": err["error"]["code"]}
        err["request_id"] = rid
        return status, orjson.dumps(err), dep.header, JSON

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
        """Answer one data-plane request (exchange.py): the entry of every transport, and the
        whole of what the inline lane (inline.py) does for the requests it takes."""
        rid = self.arrived(ex)
        await self.finish(ex, rid, self._dispatch(ex, rid))

    def arrived(self, ex) -> str:
        """A request's id; its trace starts (`ex.trace`) when there is telemetry."""
        if self.telemetry is not None:
            ex.trace = RequestTrace(time.perf_counter())
        return f"{self._id_prefix}-{next(self._ids):x}"

    async def finish(self, ex, rid: str, answering) -> None:
        """Await `answering` (a coroutine that answers `ex`); an error is a 500 without a traceback;
        the request is recorded at the end."""
        try:
            await answering
        except Exception:  # never a traceback to the client
            log.exception("gateway error (request %s)", rid)
            if not ex.responded:
                await self._error(ex, 500, "internal_error", "internal error", rid)
        finally:
            self.done(ex, rid)

    def done(self, ex, rid: str) -> None:
        """Record an answered request (once its endpoint is known: see unknown_endpoint)."""
        trace = ex.trace
        if trace is not None and trace.endpoint is not None:
            try:
                self.telemetry.request_done(trace, rid, ex.method, ex.path, ex.client)
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


def error_body(code: str, message: str, rid: str, v2: bool = False) -> bytes:
    # The V2 protocol's error body is {"error": "<message>"}; ours nests code and message.
    if v2:
        return orjson.dumps({"error": message, "code": code, "request_id": rid})
    return orjson.dumps({"error": {"code": code, "message": message}, "request_id": rid})
