"""Shared placement: many deployments' models in a few multi-model worker processes.

A `SharedPool` keeps up to `workers` worker processes (runtime/worker.py), forked from the same
warm zygote as replicas. A `SharedReplica` is one deployment's model in one worker, and
implements the whole ReplicaHandle protocol, so the controller, the supervisor and the gateway
treat it as any replica: starting one registers the model in a worker (LOAD) and it is ready
once loaded; stopping it drains its requests and unregisters it (UNLOAD); when its worker dies
it closes, like a replica whose process exited, and the controller starts it again in another
worker. `instance_count` handles of a deployment go to different workers when there are enough.

Placement: a new model goes to a worker that does not hold its deployment's other replicas if
there is one, then to the one whose models take the fewest bytes. A worker evicts its least
recently used models when they pass its memory budget, and reloads one on its next request.
A worker whose resident memory keeps growing beyond its models after it has freed some (a leak
in a model's code, fragmentation) is recycled: a fresh worker takes its models over one by one,
without a failed request, and the old one exits.

This backend runs on local compute; on Ray compute every replica is dedicated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from pathlib import Path
from typing import Callable

import orjson

from ..errors import DeploymentFailed
from ..fsutil import size_on_disk, tail_lines
from ..logfmt import iso_time
from ..runtime import protocol as p
from .base import InitFailed, ReplicaGone, ReplicaSpec, RequestKind
from .local import LocalBackend, replica_config
from .shared_worker import WorkerConnection
from .zygote import SINGLE_THREAD

log = logging.getLogger("modelfleet.backends.shared")

DEFAULT_MEMORY_BUDGET = 1 << 30
MONITOR_S = 2.0            # how often the pool reads its workers' memory
WORKER_START_TIMEOUT_S = 60.0
MOVE_CONCURRENCY = 16      # models moved at once when a worker is recycled
UNLOAD_WAIT_S = 2.0        # how long a stop waits for its model to be unregistered
STUCK_AFTER_S = 10.0       # a worker that has not unregistered a model by then is stuck: killed


def default_workers() -> int:
    """One worker per core (a worker is single-threaded), at least two so that a rolling update
    and a dead worker have somewhere else to go, and at most eight."""
    return min(8, max(2, os.cpu_count() or 1))


def recycle_slack(budget: int) -> int:
    """Resident memory beyond a worker's baseline and its loaded models that it may keep."""
    return max(32 << 20, budget // 2)


def leaking(stats: dict, slack: int) -> bool:
    """Whether a worker's memory grew past what it holds after it freed models: freed memory that
    did not come back (a model's code keeping references, fragmentation) only ever grows."""
    if not stats or not stats.get("frees"):
        return False
    return stats["rss"] - stats["baseline"] - stats["used"] > slack


class SharedReplica:
    """One deployment's model in one shared worker, as a ReplicaHandle."""

    def __init__(self, pool: SharedPool, spec: ReplicaSpec, worker: WorkerConnection):
        self.pool = pool
        self.spec = spec
        self.id = spec.replica_id
        self.models = frozenset({spec.model_key})
        self.info: dict = {}
        self.on_batch = None
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

    def give_up(self, fut: asyncio.Future) -> None:
        if fut in self._pending:
            self._late.add(fut)

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


class SharedPool:
    """The shared workers of one Python environment (today: the server's)."""

    name = "shared"

    def __init__(self, local: LocalBackend, logs_dir: Path, workers: int | None = None,
                 memory_budget: int | None = None):
        self.zygote = local.zygote        # the server's own interpreter's warm parent
        self.children = local.children    # reaps the workers, as it reaps replicas
        self.logs_dir = logs_dir
        self.size = workers or default_workers()
        self.budget = memory_budget or DEFAULT_MEMORY_BUDGET
        self.slack = recycle_slack(self.budget)
        self.workers: list[WorkerConnection] = []
        self._serial = 0
        self._lock = asyncio.Lock()
        self._monitor: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()   # recycles and checks of stuck workers

    async def warm(self) -> None:
        pass   # workers start with the first shared deployment

    async def start(self, spec: ReplicaSpec) -> SharedReplica:
        for _ in range(3):
            async with self._lock:
                worker = await self._choose(spec)
            try:
                return SharedReplica(self, spec, worker)
            except ReplicaGone:
                continue   # it exited since it was chosen: choose again
        raise DeploymentFailed(f"no shared worker could take {spec.endpoint}/{spec.deployment}: they keep exiting "
                               f"(logs: {self.logs_dir})")

    async def _choose(self, spec: ReplicaSpec) -> WorkerConnection:
        live = [w for w in self.workers if w.usable]
        if len(live) < self.size:
            return await self._spawn()
        apart = [w for w in live if not any(h.spec.endpoint == spec.endpoint and h.spec.deployment == spec.deployment
                                            for h in w.handles.values())]
        return min(apart or live, key=lambda w: (w.assigned_bytes, len(w.handles)))

    async def _spawn(self) -> WorkerConnection:
        self._serial += 1
        wid = self._serial
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.logs_dir / f"worker-{wid}.log"
        cfg = {"worker": True, "worker_id": wid, "memory_budget": self.budget, "deployment": f"shared-{wid}",
               "environ": {**os.environ, **SINGLE_THREAD}, "cwd": None, "log_path": str(log_path)}
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            pid = await self.zygote.spawn(cfg, theirs.fileno())
            ours.setblocking(False)
            _, worker = await asyncio.get_running_loop().connect_accepted_socket(
                lambda: WorkerConnection(wid, self._lost, self._check_memory), ours)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        worker.pid = pid
        self.children.new(pid)
        try:
            await asyncio.wait_for(asyncio.shield(worker.started), WORKER_START_TIMEOUT_S)
        except (ReplicaGone, asyncio.TimeoutError):
            worker.kill()
            worker.close()
            tail = "\n".join(tail_lines(log_path, 20))
            raise DeploymentFailed(f"shared worker {wid} (pid {pid}) did not start (log: {log_path})",
                                   detail=tail) from None
        self.workers.append(worker)
        if self._monitor is None or self._monitor.done():
            self._monitor = asyncio.create_task(self._watch())
        log.info("shared worker %d started (pid %d, memory budget %d MiB)", wid, pid, self.budget >> 20)
        return worker

    def _lost(self, worker: WorkerConnection) -> None:
        if worker in self.workers:
            self.workers.remove(worker)
            if not worker.retiring:
                log.warning("shared worker %d (pid %s) exited; its models start again in another worker",
                            worker.id, worker.pid)

    def _poll(self, worker: WorkerConnection) -> int | None:
        """Its exit code once it has exited: the server reaps it (a subreaper), or the zygote."""
        if worker.exit_code is None and worker.pid is not None:
            worker.exit_code = self.children.reap(worker.pid)
            if worker.exit_code is None:
                worker.exit_code = self.zygote.exit_codes.get(worker.pid)
            if worker.exit_code is not None:
                self.zygote.children.discard(worker.pid)
        return worker.exit_code

    async def exit_code(self, worker: WorkerConnection | None) -> int | None:
        if worker is None:
            return None
        for _ in range(50):  # the exit code arrives a moment after the socket closes
            if self._poll(worker) is not None:
                return worker.exit_code
            await asyncio.sleep(0.02)
        return None

    def _background(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def suspect(self, worker: WorkerConnection, unload: asyncio.Future, what: str) -> None:
        """A stop could not unregister `what` in time: if the worker has still not done so after
        STUCK_AFTER_S, it is stuck in a model call (or wedged) and is killed, so that its models
        start again elsewhere rather than wait behind it."""
        async def check() -> None:
            retiring, worker.retiring = worker.retiring, True   # meanwhile, no new model goes there
            with contextlib.suppress(asyncio.TimeoutError, ReplicaGone):
                await asyncio.wait_for(unload, STUCK_AFTER_S)
                worker.retiring = retiring
                return
            if not worker.closed:
                log.warning("shared worker %d (pid %s) has not unregistered %s in %.0f s (its current model "
                            "call has run %.0f s); killing it", worker.id, worker.pid, what,
                            STUCK_AFTER_S + UNLOAD_WAIT_S, worker.busy_s)
                worker.kill()
        self._background(check())

    # -- memory watch and recycling --------------------------------------------------------------

    async def _watch(self) -> None:
        """Ask every worker for its memory now and then (evictions report it too)."""
        while self.workers:
            await asyncio.sleep(MONITOR_S)
            for worker in self.workers:
                if worker.usable:
                    worker.ask_stats()

    def _check_memory(self, worker: WorkerConnection) -> None:
        if worker.usable and leaking(worker.stats, self.slack):
            worker.retiring = True   # at once: the next report must not start a second recycle
            self._background(self.recycle(worker))

    async def recycle(self, old: WorkerConnection) -> bool:
        """Move every model of `old` to a fresh worker, then let `old` exit; True when it did."""
        old.retiring = True
        stats = old.stats
        log.warning("shared worker %d (pid %s) holds %d MiB beyond its models after freeing %s of them; "
                    "moving its %d models to a fresh worker", old.id, old.pid,
                    (stats.get("rss", 0) - stats.get("baseline", 0) - stats.get("used", 0)) >> 20,
                    stats.get("frees"), len(old.handles))
        try:
            async with self._lock:
                new = await self._spawn()
        except Exception:
            log.exception("could not start a worker to recycle shared worker %d into", old.id)
            old.retiring = False
            return False
        gate = asyncio.Semaphore(MOVE_CONCURRENCY)

        async def move(handle: SharedReplica) -> None:
            async with gate:
                if handle.worker is old:
                    await handle.move_to(new)

        await asyncio.gather(*(move(h) for h in list(old.handles.values())), return_exceptions=True)
        if any(h.worker is old for h in old.handles.values()):
            old.retiring = False   # some could not move: the old worker keeps serving them
            return False
        old.close()
        return True

    async def shutdown(self) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
        for task in list(self._tasks):
            task.cancel()
        workers = list(self.workers)
        for w in workers:
            w.retiring = True
            w.close()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(w.wait_closed() for w in workers)), 2.0)
        for w in workers:
            if self._poll(w) is None:
                w.kill()
