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

from ...domain.errors import DeploymentFailed
from ...files.fsutil import tail_lines
from ..base import ReplicaGone, ReplicaSpec
from ..local.backend import LocalBackend
from .replica import UNLOAD_WAIT_S, SharedReplica
from .worker_client import WorkerConnection
from ..local.zygote_client import SINGLE_THREAD

log = logging.getLogger("modelfleet.backends.shared")

DEFAULT_MEMORY_BUDGET = 1 << 30
MONITOR_S = 2.0            # how often the pool reads its workers' memory
WORKER_START_TIMEOUT_S = 60.0
MOVE_CONCURRENCY = 16      # models moved at once when a worker is recycled
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
