"""In-memory stand-ins for unit tests of pure control-plane logic: a clock and a backend.

The fake backend implements the same ReplicaHandle protocol as the local one. A deployment tells
its fake replicas how to behave through its environment variables:

    FAKE_INIT=fail   init raises (InitFailed)
    FAKE_INIT=hang   never becomes ready

and `FakeBackend.init` says the same for every replica (a dependency down, say).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math

from modelfleet.backends.base import InitFailed, Pending, ReplicaGone, ReplicaSpec, RequestKind
from modelfleet.server.control.clock import Clock


async def settle(rounds: int = 50) -> None:
    """Let every runnable task take its next steps."""
    for _ in range(rounds):
        await asyncio.sleep(0)


async def until(predicate, timeout: float = 10.0):
    """Wait (in real time) until `predicate()` is true; store calls run in worker threads."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (value := predicate()):
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)
    return value


class FakeClock(Clock):
    """Time that moves only when the test says so."""

    def __init__(self, start: float = 1000.0):
        self.t = start
        self._timers: list = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        fut = asyncio.get_running_loop().create_future()
        self.call_later(seconds, lambda: fut.done() or fut.set_result(None))
        await fut

    def call_later(self, seconds: float, fn) -> None:
        heapq.heappush(self._timers, (self.t + max(0.0, seconds), next(self._seq), fn))

    async def advance(self, seconds: float) -> None:
        target = self.t + seconds
        await settle()
        while self._timers and self._timers[0][0] <= target:
            when, _, fn = heapq.heappop(self._timers)
            self.t = max(self.t, when)
            fn()
            await settle()
        self.t = target
        await settle()


class FakeReplica:
    def __init__(self, spec: ReplicaSpec, pid: int):
        loop = asyncio.get_running_loop()
        self.spec = spec
        self.id = spec.replica_id
        self.models = frozenset({spec.model_key})
        self.info = {"pid": pid}
        self.on_batch = None
        self.on_late = None
        self.on_evicted = self.on_reloaded = None   # its model never leaves
        self.pid = pid
        self.answer_probes = True
        self.responsive = True
        self.busy_s = 0.0
        self.overdue_at = math.inf   # the test sets it (0: its current call is overdue)
        self.rss: int | None = 10 * 2**20
        self.notes: list[str] = []
        self.stopped = False
        self.exit_code: int | None = None
        self.requests = Pending()
        self._ready = loop.create_future()
        self._closed = loop.create_future()

    # what the test does to it
    def die(self, code: int = -9) -> None:
        if self._closed.done():
            return
        self.exit_code = code
        busy = self.overdue_at != math.inf   # in a call: the requests after the first one never reached it
        self.requests.fail_all(ReplicaGone(), ReplicaGone(reached_model=False) if busy else None, 1)
        if not self._ready.done():
            self._ready.set_exception(InitFailed(f"exited before it became ready (exit code {code})"))
        self._closed.set_result(None)

    def answer_all(self, payload: bytes = b'"ok"') -> None:
        for rid in list(self.requests.futures):
            self.requests.resolve(rid, (0, payload))

    # ReplicaHandle
    @property
    def inflight(self) -> int:
        return self.requests.inflight

    @property
    def unanswered(self) -> int:
        return len(self.requests.futures)

    @property
    def late(self) -> int:
        return len(self.requests.late)

    @property
    def answered(self) -> int:
        return self.requests.answered

    def queued_behind(self, fut: asyncio.Future) -> bool:
        return self.requests.behind(fut, 1)

    def give_up(self, fut: asyncio.Future) -> None:
        self.requests.give_up(fut)
        if self.on_late is not None:
            self.on_late()

    @property
    def closed(self) -> bool:
        return self._closed.done()

    async def ready(self) -> None:
        await self._ready

    def send(self, model: str, kind: RequestKind, body: bytes, header_length: int = 0,
             request_id: str = "") -> asyncio.Future:
        if self.closed:
            raise ReplicaGone("replica connection closed")
        fut = asyncio.get_running_loop().create_future()
        self.requests.add(fut)
        return fut

    async def probe(self, timeout: float) -> bool:
        if self.closed:
            raise ReplicaGone("replica connection closed")
        return self.answer_probes

    def memory_bytes(self) -> int | None:
        return self.rss

    def cpu_seconds(self) -> float | None:
        return None

    async def wait_closed(self) -> int | None:
        await self._closed
        return self.exit_code

    async def stop(self, grace_s: float = 5.0) -> None:
        self.stopped = True
        self.die(0)

    def note(self, message: str) -> None:
        self.notes.append(message)

    async def log_tail(self, lines: int) -> str:
        return "\n".join(self.notes[-lines:])

    reachable = False   # set by a backend whose replicas other servers reach (as Ray's)

    def address(self) -> dict | None:
        return {"replica": self.id} if self.reachable else None

    def disconnect(self) -> None:
        pass

    def describe(self) -> dict:
        return {"pid": self.pid, "node": "fake"}


class FakeBackend:
    name = "fake"

    def __init__(self):
        self.started: list[FakeReplica] = []
        self.shut_down = False
        self.init: str | None = None   # "fail" or "hang" for every replica, whatever its spec says
        self._pids = itertools.count(100)
        self.reachable = False      # replicas every server reaches, as a Ray compute's
        self.adopted: dict[str, set[str]] | None = {}

    async def warm(self) -> None:
        pass

    async def connect(self, spec: ReplicaSpec, address: dict) -> FakeReplica:
        """Another controller's replica (two controllers in a test share one backend)."""
        return next(r for r in self.started if r.id == address["replica"] and not r.closed)

    async def adopt(self, replica_ids: dict[str, set[str]] | None) -> None:
        self.adopted = replica_ids

    async def start(self, spec: ReplicaSpec) -> FakeReplica:
        replica = FakeReplica(spec, next(self._pids))
        replica.reachable = self.reachable
        behaviour = self.init or spec.env.get("FAKE_INIT")
        if behaviour == "fail":
            replica._ready.set_exception(InitFailed("failed to start: RuntimeError: boom", detail="Traceback: boom"))
        elif behaviour != "hang":
            replica._ready.set_result(None)
        self.started.append(replica)
        return replica

    async def shutdown(self) -> None:
        self.shut_down = True

    def fault(self, compute: str) -> str | None:
        return None

    def release(self, python) -> None:
        pass

    def live(self, deployment: str | None = None) -> list[FakeReplica]:
        return [r for r in self.started if not r.closed and (deployment is None or r.spec.deployment == deployment)]
