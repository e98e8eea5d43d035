"""The replica end of the wire, as the server holds it: framed requests over one stream socket.

Both backends talk to their replicas the same way (runtime/protocol.py frames over a socketpair
locally, over TCP to a Ray actor): many requests in flight at once, matched by id, bodies passed
through untouched. `FramedReplica` implements the data-plane half of `ReplicaHandle`; each
backend subclasses it with how its replicas are started, watched and stopped.
"""

from __future__ import annotations

import asyncio

import orjson

from ..runtime import protocol as p
from .base import InitFailed, Pending, ReplicaGone, ReplicaSpec, RequestKind
from .calls import HEARD_RECENTLY_S, CallAge
from .outbox import Outbox


class FramedReplica(asyncio.Protocol):
    def __init__(self, spec: ReplicaSpec):
        self.spec = spec
        self.id = spec.replica_id
        self.models = frozenset({spec.model_key})
        self.info: dict = {}
        self.on_batch = None
        self.on_late = None
        self.on_evicted = self.on_reloaded = None   # its model never leaves
        self.loop = asyncio.get_running_loop()
        self.last_rss: int | None = None     # as the replica last reported it (with each probe)
        self.call = CallAge(self.loop)       # its current model call, as its heartbeats tell it
        self._heard_at = float("-inf")       # when its last heartbeat (or pong) came
        self.responsive = True
        self._requests = Pending()
        self._probes: dict[int, asyncio.Future] = {}
        self._ready: asyncio.Future = self.loop.create_future()
        self._closed: asyncio.Future = self.loop.create_future()
        self._out = Outbox(self.loop)   # frames to the replica, one write per pass of the loop
        self._buf = bytearray()

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport) -> None:
        self._out.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buf += data
        for rid, kind, payload in p.split_frames(self._buf):
            if kind == p.PONG:  # an answer to a PING, or a heartbeat (id 0) from the replica's watch thread
                self._heard_at = self.loop.time()
                if payload:
                    self.last_rss, busy_s, usual_s = p.split_pong(payload)
                    self.call.heard(busy_s, usual_s)
                for fut in ([self._probes.pop(rid, None)] if rid else self._probes.values()):
                    if fut is not None and not fut.done():
                        fut.set_result(True)
                if not rid:
                    self._probes.clear()
            elif kind == p.BATCH:
                if self.on_batch is not None:
                    self.on_batch(self.spec.endpoint, self.spec.deployment, int.from_bytes(payload, "big"))
            elif kind in (p.READY, p.INIT_FAILED):
                if not self._ready.done():
                    self._ready.set_result((kind, payload))
            else:
                self.call.idle()
                self._requests.resolve(rid, (kind, payload))

    def connection_lost(self, exc) -> None:
        gone = ReplicaGone("replica connection closed")
        # requests queued behind a model call that was under way never reached the model
        behind = ReplicaGone("replica connection closed", reached_model=False) if self.call.since is not None else None
        self._requests.fail_all(gone, behind, self.spec.batching.max_batch_size)
        for fut in self._probes.values():
            if not fut.done():
                fut.set_exception(gone)
                fut.exception()
        self._probes.clear()
        if not self._ready.done():
            self._ready.set_result(None)
        if not self._closed.done():
            self._closed.set_result(None)

    # -- the data-plane half of ReplicaHandle ------------------------------------------------

    @property
    def inflight(self) -> int:
        return self._requests.inflight

    @property
    def unanswered(self) -> int:
        return len(self._requests.futures)

    @property
    def late(self) -> int:
        return len(self._requests.late)

    @property
    def answered(self) -> int:
        return self._requests.answered

    @property
    def busy_s(self) -> float:
        return self.call.busy_s

    @property
    def overdue_at(self) -> float:
        return self.call.overdue_at

    def queued_behind(self, fut: asyncio.Future) -> bool:
        return self.call.since is not None and self._requests.behind(fut, self.spec.batching.max_batch_size)

    def give_up(self, fut: asyncio.Future) -> None:
        self._requests.give_up(fut)
        if self.on_late is not None:
            self.on_late()

    @property
    def closed(self) -> bool:
        return self._closed.done()

    def send(self, model: str, kind: RequestKind, body: bytes, header_length: int = 0,
             request_id: str = "") -> asyncio.Future:
        if self._closed.done():
            raise ReplicaGone("replica connection closed")
        fut = self.loop.create_future()
        rid = self._requests.add(fut)
        # a V2 request carries its JSON header length: the replica splits header and binary tensors
        prefix = header_length.to_bytes(4, "big") if kind == RequestKind.V2_INFER else b""
        self._out.put(p.request_frame(rid, kind, request_id.encode(), body, prefix))
        return fut

    async def ready(self) -> None:
        answer = await self._ready
        if answer is None:
            raise InitFailed(await self._gone_before_ready(), detail=await self.log_tail(20))
        kind, payload = answer
        if kind == p.INIT_FAILED:
            tb = payload.decode("utf-8", "replace").strip()
            raise InitFailed(f"failed to start: {tb.splitlines()[-1] if tb else 'init failed'}", detail=tb)
        self.info = orjson.loads(payload)

    async def probe(self, timeout: float) -> bool:
        if self._closed.done():
            raise ReplicaGone("replica connection closed")
        if self.loop.time() - self._heard_at < HEARD_RECENTLY_S:
            return True   # a heartbeat just came: alive, and no wait for the next one
        fut = self.loop.create_future()
        self._requests.next_id = rid = (self._requests.next_id + 1) & 0xFFFFFFFF
        self._probes[rid] = fut
        self._out.put(p.frame(rid, p.PING))
        try:
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            self._probes.pop(rid, None)
            return False

    async def wait_closed(self) -> int | None:
        await self._closed
        return await self.exit_code()

    def open_with(self, secret: bytes) -> None:
        """The first bytes on the socket, before any frame (a Ray replica's secret)."""
        self._out.put(secret)

    def close_connection(self) -> None:
        self._out.close()

    def disconnect(self) -> None:
        self.close_connection()

    def address(self) -> dict | None:
        return None   # a local replica: only its own server reaches it

    # -- what a backend adds -----------------------------------------------------------------

    async def exit_code(self) -> int | None:
        return None

    def cpu_seconds(self) -> float | None:
        return None

    async def _gone_before_ready(self) -> str:
        return f"exited before it became ready (exit code {await self.exit_code()})"

    async def log_tail(self, lines: int) -> str:
        return ""
