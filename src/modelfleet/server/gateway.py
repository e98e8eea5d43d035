"""The data plane: authenticate, route endpoint -> deployment -> replica, answer.

Raw ASGI with no framework or validation layer on the hot path. It reads only the routing
snapshots the controller pushes (never SQL). Answers are the replica's JSON bytes, passed through;
every error is JSON with a request id, never a traceback.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import logging
import os
import random

import orjson

from ..backends.base import ReplicaGone
from ..runtime import protocol as p
from . import v2_routes
from .routing import DeploymentRoute, EndpointRoute, Saturated

log = logging.getLogger("modelfleet.gateway")

_JSON = (b"content-type", b"application/json")
_STATUS = {p.OK: 200, p.BAD_REQUEST: 400, p.MODEL_ERROR: 424}


class ClientGone(Exception):
    """The client disconnected before its request was complete."""


def _expire(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError())


class Gateway:
    def __init__(self):
        self.routes: dict[str, EndpointRoute] = {}
        self._ids = itertools.count(1)
        self._id_prefix = os.urandom(4).hex()
        self._background: set[asyncio.Task] = set()
        self.ready = False   # the controller sets this once it has restored every endpoint

    # -- plumbing ----------------------------------------------------------------------------

    @staticmethod
    async def _send(send, status: int, body: bytes, rid: str, extra: list | None = None) -> None:
        # An explicit length spares the client chunked decoding.
        headers = [_JSON, (b"content-length", str(len(body)).encode()), (b"x-request-id", rid.encode())]
        if extra:
            headers += extra
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _error(self, send, status: int, code: str, message: str, rid: str, v2: bool = False) -> None:
        # The V2 protocol's error body is {"error": "<message>"}; ours nests code and message.
        err = message if v2 else {"code": code, "message": message}
        body = orjson.dumps({"error": err, "code": code, "request_id": rid} if v2 else
                            {"error": err, "request_id": rid})
        await self._send(send, status, body, rid)

    @staticmethod
    async def _read_body(receive, limit: int) -> bytes | None:
        """The whole body, or None once it grows past `limit`; ClientGone if the client leaves
        before sending all of it (a partial body must never reach a model)."""
        msg = await receive()
        if msg["type"] == "http.disconnect":
            raise ClientGone()
        body = msg.get("body", b"")
        if not msg.get("more_body"):
            return body if len(body) <= limit else None
        parts, size = [body], len(body)
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                raise ClientGone()
            chunk = msg.get("body", b"")
            parts.append(chunk)
            size += len(chunk)
            if size > limit:
                return None
            if not msg.get("more_body"):
                return b"".join(parts)

    # -- routing -----------------------------------------------------------------------------

    async def forward(self, dep: DeploymentRoute, kind: int, body: bytes) -> tuple[int, bytes | None, str]:
        """(HTTP status, replica payload or None, error message)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + dep.timeout_s
        try:
            await dep.admit(deadline)
        except Saturated:
            return 429, None, f"deployment {dep.name!r} is at capacity and its queue is full"
        except TimeoutError:
            if not dep.replicas:
                return 503, None, f"deployment {dep.name!r} has no ready replica"
            return 408, None, f"request timed out after {dep.timeout_s * 1000:.0f} ms waiting in queue"
        slot_held = True
        crashes = 0
        try:
            # Inference is idempotent: when a replica dies mid-request, retry on another one, or
            # on its replacement, until the deadline; a request that kills two replicas is the
            # cause, not the victim, and is not retried again.
            while True:
                replica = dep.pick()
                if replica is None:
                    if loop.time() >= deadline:
                        return 503, None, f"deployment {dep.name!r} has no ready replica"
                    await asyncio.sleep(0.01)
                    continue
                replica.inflight += 1
                try:
                    fut = replica.conn.send(kind, body)
                    timer = loop.call_at(deadline, _expire, fut)
                    try:
                        status, payload = await fut
                    finally:
                        timer.cancel()
                except ReplicaGone:
                    replica.inflight -= 1
                    crashes += 1
                    if crashes >= 2:
                        return 502, None, "the replica exited while handling this request (twice)"
                    continue
                except (TimeoutError, asyncio.CancelledError) as e:
                    # The replica is still working on it: its slot stays taken until the late
                    # answer arrives (or the replica dies), so a slow model is not overloaded.
                    slot_held = False
                    replica.conn.on_late(fut, lambda r=replica: (setattr(r, "inflight", r.inflight - 1),
                                                                  dep.release()))
                    if isinstance(e, asyncio.CancelledError):
                        raise
                    return 408, None, f"request timed out after {dep.timeout_s * 1000:.0f} ms"
                replica.inflight -= 1
                return _STATUS.get(status, 502), payload, ""
        finally:
            if slot_held:
                dep.release()

    def _mirror(self, dep: DeploymentRoute, kind: int, body: bytes) -> None:
        """Copy a request to the mirror deployment; never queued, never awaited, answer dropped."""
        if not dep.replicas or not dep.has_capacity():
            return
        task = asyncio.ensure_future(self.forward(dep, kind, body))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def serve(self, scope, receive, send, ep: EndpointRoute, target: str | None, kind: int,
                    rid: str, headers: dict) -> None:
        v2 = kind == p.V2_INFER
        if ep.auth_mode == "key" and not self._authorized(ep, headers.get(b"authorization")):
            return await self._error(send, 401, "unauthorized",
                                     "missing or invalid key: send Authorization: Bearer <key>", rid, v2)
        target = target or (headers.get(b"azureml-model-deployment") or b"").decode("latin-1") or None
        if target is not None:
            dep = ep.deployments.get(target)
            if dep is None:
                return await self._error(send, 404, "not_found",
                                         f"deployment {target!r} not found on endpoint {ep.name!r}", rid, v2)
        else:
            dep = ep.choose()
            if dep is None:
                return await self._error(send, 503, "no_traffic",
                                         f"endpoint {ep.name!r} has no deployment taking traffic", rid, v2)
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > dep.max_body:
            return await self._error(send, 413, "payload_too_large",
                                     f"request body is larger than {dep.max_body} bytes", rid, v2)
        try:
            body = await self._read_body(receive, dep.max_body)
        except ClientGone:
            return
        if body is None:
            return await self._error(send, 413, "payload_too_large",
                                     f"request body is larger than {dep.max_body} bytes", rid, v2)
        if kind == p.V2_INFER:  # the JSON header length of a V2 request with binary tensors (0: none)
            hlen = headers.get(b"inference-header-content-length", b"0")
            n = int(hlen) if hlen.isdigit() and len(hlen) < 10 else 0
            body = n.to_bytes(4, "big") + body
        if target is None and ep.mirror is not None and random.random() < ep.mirror_pct:
            self._mirror(ep.mirror, kind, body)
        status, payload, message = await self.forward(dep, kind, body)
        if payload is None:
            code = {408: "timeout", 429: "too_many_requests", 503: "unavailable"}.get(status, "replica_error")
            return await self._error(send, status, code, message, rid, v2)
        if status == 200:
            return await self._send(send, 200, payload, rid, dep.header)
        err = orjson.loads(payload)
        if v2:
            err = {"error": err["error"]["message"], "code": err["error"]["code"]}
        err["request_id"] = rid
        await self._send(send, status, orjson.dumps(err), rid, dep.header)

    @staticmethod
    def _authorized(ep: EndpointRoute, value: bytes | None) -> bool:
        if not value or value[:7].lower() != b"bearer ":
            return False
        given = value[7:].strip()
        ok = False
        for key in ep.keys:  # compare with every key so timing does not tell which one matched
            ok |= hmac.compare_digest(given, key)
        return ok

    # -- ASGI ---------------------------------------------------------------------------------

    async def __call__(self, scope, receive, send) -> None:
        rid = f"{self._id_prefix}-{next(self._ids):x}"
        try:
            await self._dispatch(scope, receive, send, rid)
        except Exception:  # never a traceback to the client
            log.exception("gateway error (request %s)", rid)
            await self._error(send, 500, "internal_error", "internal error", rid)

    async def _dispatch(self, scope, receive, send, rid: str) -> None:
        parts = scope["path"].strip("/").split("/")
        method = scope["method"]
        headers = dict(scope["headers"])
        if parts[0] == "endpoints":
            if len(parts) != 3 or parts[2] != "score":
                return await self._error(send, 404, "not_found", "use POST /endpoints/{endpoint}/score", rid)
            if method != "POST":
                return await self._error(send, 405, "method_not_allowed", "use POST", rid)
            ep = self.routes.get(parts[1])
            if ep is None:
                return await self._error(send, 404, "not_found", f"endpoint {parts[1]!r} not found", rid)
            return await self.serve(scope, receive, send, ep, None, p.SCORE, rid, headers)
        return await v2_routes.dispatch(self, parts, method, scope, receive, send, rid, headers)
