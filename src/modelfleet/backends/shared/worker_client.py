"""The server's end of one shared multi-model worker's socket (runtime/worker.py).

Requests and control frames carry a model key; answers are matched to them by id, as on a
replica's socket. Events the worker sends on its own (a model evicted, reloaded on demand, a
batch scored) go to the handle registered under that key. Liveness is the worker's: its
heartbeats (a PONG every 0.25 s, with how long the current model call has run) answer every
handle's probe, so a thousand models in one worker cost one ping now and then, not a thousand.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import Callable, Protocol

import orjson

from ...runtime import protocol as p
from ..base import Pending, ReplicaGone, RequestKind
from ..calls import HEARD_RECENTLY_S, CallAge
from ..outbox import Outbox



class ModelHandle(Protocol):
    """What a worker connection needs of the handles of its models (backends/shared.py)."""
    key: str
    size: int
    worker: "WorkerConnection"

    def worker_event(self, kind: int, payload: bytes) -> None: ...

    def worker_lost(self, worker: "WorkerConnection") -> None: ...


class WorkerConnection(asyncio.Protocol):
    def __init__(self, worker_id: int, lost: Callable[["WorkerConnection"], None],
                 memory: Callable[["WorkerConnection"], None]):
        self.id = worker_id
        self.pid: int | None = None
        self.exit_code: int | None = None             # once it has exited and been reaped
        self.handles: dict[str, ModelHandle] = {}   # model key -> the handle registered under it
        self.stats: dict = {}                         # the worker's memory, as it last reported it
        self.retiring = False                         # being recycled: no new models
        self.stuck = False                            # in a call that outlived a request: no new models
        self.loop = asyncio.get_running_loop()
        self.call = CallAge(self.loop)                # its current model call (any model's), from its heartbeats
        self.started: asyncio.Future = self.loop.create_future()   # the worker's first words
        self._lost = lost
        self._memory = memory   # told each time `stats` changes
        self._pending = Pending()
        self._closed: asyncio.Future = self.loop.create_future()
        self._out = Outbox(self.loop)   # frames to the worker, one write per pass of the loop
        self._buf = bytearray()
        self._ping: asyncio.Future | None = None
        self._pong_at = float("-inf")

    # -- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport) -> None:
        self._out.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buf += data
        for rid, kind, payload in p.split_frames(self._buf):
            if kind in (p.OK, p.MODEL_ERROR, p.BAD_REQUEST):
                self.call.idle()
                self.stuck = False
                self._pending.resolve(rid, (kind, payload))
            elif kind == p.PONG:   # an answer to a PING, or a heartbeat (id 0)
                self._pong_at = self.loop.time()
                _, busy_s, usual_s = p.split_pong(payload)
                self.call.heard(busy_s, usual_s)
                if rid:
                    self._pending.resolve(rid, (kind, b""))
                elif self._ping is not None and not self._ping.done():
                    self._ping.set_result((kind, b""))   # alive: the ping's own answer may be queued behind a call
            elif kind == p.WORKER_STATS:
                self._stats(payload)
            elif kind == p.UNKNOWN_MODEL:
                fut = self._pending.futures.pop(rid, None)
                if fut is not None and not fut.done():
                    fut.set_exception(ReplicaGone("the model is not registered in its shared worker"))
            elif kind in (p.LOADED, p.LOAD_FAILED, p.UNLOADED, p.EVICTED, p.MODEL_BATCH):
                key, rest = p.split_key(payload)
                if rid:  # the answer to a LOAD or UNLOAD
                    self._pending.resolve(rid, (kind, rest))
                    continue
                handle = self.handles.get(key)   # news of a model: evicted, reloaded, a batch
                if handle is not None and handle.worker is self:
                    handle.worker_event(kind, rest)
                if kind == p.EVICTED:   # memory was freed: did it come back?
                    self._stats(rest)
            elif kind == p.WORKER_READY and not self.started.done():
                self.started.set_result(orjson.loads(payload))

    def _stats(self, payload: bytes) -> None:
        self.stats = orjson.loads(payload)
        self._memory(self)

    def connection_lost(self, exc) -> None:
        self._pending.fail_all(ReplicaGone("the shared worker's connection closed"))
        if not self.started.done():
            self.started.set_exception(ReplicaGone("the shared worker exited at start"))
            self.started.exception()
        if not self._closed.done():
            self._closed.set_result(None)
        for handle in list(self.handles.values()):
            handle.worker_lost(self)
        self._lost(self)

    # -- what the pool and the handles use -------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed.done()

    @property
    def busy_s(self) -> float:
        return self.call.busy_s

    @property
    def usable(self) -> bool:
        return (self.started.done() and not self.started.exception() and not self.closed and not self.retiring
                and not self.stuck)

    @property
    def assigned_bytes(self) -> int:
        """What its registered models take (the last measured size, or an estimate before)."""
        return sum(h.size for h in self.handles.values())

    def attach(self, handle: ModelHandle) -> None:
        self.handles[handle.key] = handle

    def detach(self, handle: ModelHandle) -> None:
        if self.handles.get(handle.key) is handle:
            del self.handles[handle.key]

    def request(self, key: bytes, kind: RequestKind, body: bytes, header_length: int, request_id: str) -> asyncio.Future:
        if self.closed:
            raise ReplicaGone("the shared worker's connection closed")
        fut = self.loop.create_future()
        rid = self._pending.add(fut)
        if kind == RequestKind.V2_INFER:
            frame = p.keyed_request_frame(rid, p.MODEL_V2, key, request_id.encode(), body,
                                          header_length.to_bytes(4, "big"))
        else:
            frame = p.keyed_request_frame(rid, p.MODEL_SCORE, key, request_id.encode(), body)
        self._out.put(frame)
        return fut

    def control(self, kind: int, key: bytes, payload: bytes = b"") -> asyncio.Future:
        """LOAD or UNLOAD: a future of (reply kind, the reply's payload after the key)."""
        if self.closed:
            raise ReplicaGone("the shared worker's connection closed")
        fut = self.loop.create_future()
        self._out.put(p.frame(self._pending.add(fut), kind, p.keyed(key, payload)))
        return fut

    async def ping(self, timeout: float) -> bool:
        """True when the worker answered within `timeout` (or very recently); ReplicaGone if it is gone."""
        if self.closed:
            raise ReplicaGone("the shared worker's connection closed")
        if self._ping is None or self._ping.done():
            if self.loop.time() - self._pong_at < HEARD_RECENTLY_S:
                return True
            self._ping = self.loop.create_future()
            self._out.put(p.frame(self._pending.add(self._ping), p.PING))
        try:
            await asyncio.wait_for(asyncio.shield(self._ping), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    def ask_stats(self) -> None:
        """Ask for the worker's memory (WORKER_STATS comes with the answer to a PING)."""
        if not self.closed:
            self._out.put(p.frame(self._pending.add(self.loop.create_future()), p.PING))

    async def wait_closed(self) -> None:
        await self._closed

    def close(self) -> None:
        """EOF: the worker's loop ends and the process exits by itself."""
        self._out.close()

    def kill(self) -> None:
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
