"""One deployment's model in one shared worker, as a ReplicaHandle: ready once loaded, counting
its own requests, draining and unregistering at a stop, closing when its worker dies, moved to a
fresh worker when the pool recycles one (`move_to`)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Callable, Protocol

import orjson

from ...domain.errors import DeploymentFailed
from ...files.fsutil import size_on_disk, tail_lines
from ...files.logfmt import iso_time
from ...runtime import protocol as p
from ..base import InitFailed, ReplicaGone, ReplicaSpec, RequestKind
from ..local.backend import replica_config
from .worker_client import WorkerConnection

UNLOAD_WAIT_S = 2.0        # how long a stop waits for its model to be unregistered


class Pool(Protocol):
    """What a shared replica asks of the pool that placed it (pool.py's SharedPool)."""

    async def exit_code(self, worker: WorkerConnection | None) -> int | None: ...

    def suspect(self, worker: WorkerConnection, unload: asyncio.Future, what: str) -> None: ...


class SharedReplica:
    """One deployment's model in one shared worker, as a ReplicaHandle."""

    def __init__(self, pool: Pool, spec: ReplicaSpec, worker: WorkerConnection):
        self.pool = pool
        self.spec = spec
        self.id = spec.replica_id
        self.models = frozenset({spec.model_key})
        self.info: dict = {}
        self.on_batch = None
        self.on_late = None
        self.on_evicted: Callable[[str, str], None] | None = None          # (endpoint, deployment)
        self.on_reloaded: Callable[[str, str, float], None] | None = None  # (..., load seconds)
        self.key = f"{spec.endpoint}/{spec.replica_id}"
        self._kb = self.key.encode()
        if len(self._kb) > 255:
            raise DeploymentFailed(f"model key {self.key!r} is longer than 255 bytes")
        self.worker = worker
        self.loaded = False
        self.last_load_ms: float | None = None
        self.size = size_on_disk(spec.model_dir)   # measured at each load; the files' size until then
        self.responsive = True
        self.loop = asyncio.get_running_loop()
        self._pending: dict[asyncio.Future, WorkerConnection] = {}   # sent, not answered: where to
        self._late: set[asyncio.Future] = set()                       # of those, given up on
        self._answered = 0
        self._closed: asyncio.Future = self.loop.create_future()
        self._died: WorkerConnection | None = None
        self._stopping = False
        self._loading = self._register(worker, lazy=False)

    def _register(self, worker: WorkerConnection, lazy: bool) -> asyncio.Future:
        self.spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        cfg = {**replica_config(self.spec, self.spec.model_dir, None), "log_path": str(self.spec.log_path),
               "lazy": lazy}
        worker.attach(self)
        return worker.control(p.LOAD, self._kb, orjson.dumps(cfg))

    def _loaded(self, payload: bytes) -> None:
        info = orjson.loads(payload)
        if info.get("bytes") is not None:
            self.loaded, self.last_load_ms, self.size = True, info["ms"], info["bytes"]

    def worker_event(self, kind: int, payload: bytes) -> None:
        """News from the worker about this model."""
        where = (self.spec.endpoint, self.spec.deployment)
        if kind == p.LOADED:
            self._loaded(payload)
            if self.on_reloaded is not None and self.last_load_ms is not None:
                self.on_reloaded(*where, self.last_load_ms / 1000.0)
        elif kind == p.EVICTED:
            self.loaded = False
            if self.on_evicted is not None:
                self.on_evicted(*where)
        elif kind == p.MODEL_BATCH and self.on_batch is not None:
            self.on_batch(*where, int.from_bytes(payload[:2], "big"))

    def worker_lost(self, worker: WorkerConnection) -> None:
        """The worker's connection closed: its requests fail (the gateway retries them); this
        handle closes if that was where its model lived."""
        if worker is self.worker and not self._closed.done():
            self._died = worker
            self._closed.set_result(None)

    # -- ReplicaHandle ---------------------------------------------------------------------------

    @property
    def inflight(self) -> int:
        return len(self._pending) - len(self._late)

    @property
    def unanswered(self) -> int:
        return len(self._pending)

    @property
    def late(self) -> int:
        return len(self._late)

    @property
    def answered(self) -> int:
        return self._answered

    @property
    def busy_s(self) -> float:
        """How long its worker's current model call has run (any model's: they take turns)."""
        return self.worker.busy_s

    @property
    def overdue_at(self) -> float:
        return self.worker.call.overdue_at

    def queued_behind(self, fut: asyncio.Future) -> bool:
        return False   # its worker's queue holds other models' requests too: it cannot tell

    def give_up(self, fut: asyncio.Future) -> None:
        if fut in self._pending:
            self._late.add(fut)
            if self.on_late is not None:
                self.on_late()

    @property
    def closed(self) -> bool:
        return self._closed.done()

    async def ready(self) -> None:
        try:
            kind, payload = await self._loading
        except ReplicaGone:
            code = await self.pool.exit_code(self.worker)
            raise InitFailed(f"its shared worker (pid {self.worker.pid}) exited before the model loaded "
                             f"(exit code {code})", detail=await self.log_tail(20)) from None
        if kind == p.LOAD_FAILED:
            tb = payload.decode("utf-8", "replace").strip()
            raise InitFailed(f"failed to start: {tb.splitlines()[-1] if tb else 'load failed'}", detail=tb)
        self._loaded(payload)
        loaded = orjson.loads(payload)
        self.info = {"pid": self.worker.pid, "load_ms": self.last_load_ms,
                     "metadata": loaded.get("metadata"), "fast_path": loaded.get("fast_path")}   # its V2 tensors

    def send(self, model: str, kind: RequestKind, body: bytes, header_length: int = 0,
             request_id: str = "") -> asyncio.Future:
        if self._closed.done():
            raise ReplicaGone("replica closed")
        fut = self.worker.request(self._kb, kind, body, header_length, request_id)
        self._pending[fut] = self.worker
        fut.add_done_callback(self._done)
        return fut

    def _done(self, fut: asyncio.Future) -> None:
        self._pending.pop(fut, None)
        self._late.discard(fut)
        if not fut.cancelled() and fut.exception() is None:
            self._answered += 1

    def _unanswered_in(self, worker: WorkerConnection) -> int:
        return sum(1 for w in self._pending.values() if w is worker)

    async def probe(self, timeout: float) -> bool:
        if self._closed.done():
            raise ReplicaGone("replica closed")
        return await self.worker.ping(timeout)

    def memory_bytes(self) -> int | None:
        """The model's own bytes, as measured around its last load (0 while evicted)."""
        return self.size if self.loaded else 0

    def cpu_seconds(self) -> float | None:
        return None   # the worker's CPU time is shared by its models

    async def wait_closed(self) -> int | None:
        await self._closed
        return await self.pool.exit_code(self._died) if self._died is not None else None

    async def stop(self, grace_s: float = 5.0) -> None:
        """Let its requests finish, then unregister the model; the worker and its other models
        go on. Idempotent."""
        if self._stopping:
            await self._closed
            return
        self._stopping = True
        worker = self.worker
        if self._late and worker.busy_s:   # stopped in a call that outlived a request: the model that
            worker.stuck = True            # replaces it must not queue behind that call
        if not self._closed.done():
            deadline = self.loop.time() + grace_s
            while self.unanswered and self.loop.time() < deadline:
                await asyncio.sleep(0.01)
            with contextlib.suppress(ReplicaGone):
                unload = worker.control(p.UNLOAD, self._kb)
                try:
                    await asyncio.wait_for(asyncio.shield(unload), max(grace_s, UNLOAD_WAIT_S))
                except asyncio.TimeoutError:   # the worker is stuck in a model call, or wedged
                    self.pool.suspect(worker, unload, f"{self.spec.endpoint}/{self.spec.deployment}")
        worker.detach(self)
        if not self._closed.done():
            self._closed.set_result(None)

    def note(self, message: str) -> None:
        with contextlib.suppress(OSError), open(self.spec.log_path, "a") as f:
            f.write(f"{iso_time(time.time())} [modelfleet] {message}\n")

    async def log_tail(self, lines: int) -> str:
        return "\n".join(await asyncio.to_thread(tail_lines, self.spec.log_path, lines))

    def address(self) -> dict | None:
        return None   # a model in one of this server's workers

    def disconnect(self) -> None:
        pass

    def describe(self) -> dict:
        return {"placement": "shared", "pid": self.worker.pid, "worker": self.worker.id, "loaded": self.loaded,
                "last_load_ms": self.last_load_ms, "memory_bytes": self.memory_bytes(),
                "fast_path": self.info.get("fast_path"), "log": str(self.spec.log_path)}

    # -- recycling -------------------------------------------------------------------------------

    async def move_to(self, new: WorkerConnection) -> bool:
        """Register the model in `new`, send requests there, then unregister it from the old
        worker once its requests there are answered. False (nothing changed) if it failed."""
        old = self.worker
        if self._closed.done() or self._stopping or old is new:
            return False
        try:
            kind, payload = await self._register(new, lazy=not self.loaded)
        except ReplicaGone:
            new.detach(self)
            return False
        if kind != p.LOADED or self._closed.done() or self._stopping:
            new.detach(self)
            return False
        self.worker = new
        self._loaded(payload)
        self.info = {**self.info, "pid": new.pid}
        deadline = self.loop.time() + 30.0
        while self._unanswered_in(old) and self.loop.time() < deadline:
            await asyncio.sleep(0.01)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(old.control(p.UNLOAD, self._kb), 10.0)
        old.detach(self)
        return True
