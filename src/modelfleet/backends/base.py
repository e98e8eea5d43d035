"""The replica boundary: what the controller and the gateway know about a replica, and nothing more.

A backend (local processes, a Ray cluster, a test fake) starts replicas and hands back
`ReplicaHandle`s. Everything else (sockets, pids, /proc, wire frames, actor handles) stays
inside the backend:

    controller --start(ReplicaSpec)--> Backend --> ReplicaHandle <--send(model, kind, body)-- gateway
                 ready / probe / memory / wait_closed / stop

Exceptions raised across the boundary:

    ReplicaGone    the replica is gone (its process exited, its connection closed); in-flight
                   requests fail with it and may be retried elsewhere
    InitFailed     the replica never became ready (init() raised, or it exited first)
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Callable, Protocol, runtime_checkable

from ..domain.model_types import FAST_PATH_DEFAULT
from ..runtime.protocol import EXIT_MEMORY_LIMIT  # noqa: F401  the one exit code the supervisor explains
from ..schema.deployment_settings import Batching, Resources


class ReplicaGone(Exception):
    """The replica's connection closed (the process exited or was killed). `reached_model` is
    False for a request that surely waited behind the replica's current model call."""

    def __init__(self, message: str = "replica connection closed", reached_model: bool = True):
        super().__init__(message)
        self.reached_model = reached_model


class InitFailed(Exception):
    """The replica did not become ready: `str(e)` is one line, `detail` the traceback or log tail."""

    def __init__(self, message: str, detail: str | None = None):
        super().__init__(message)
        self.detail = detail


class RequestKind(IntEnum):
    SCORE = 1      # the HTTP body as received
    V2_INFER = 3   # an Open Inference Protocol v2 body (JSON header, then binary tensors if any)


class ReplyStatus(IntEnum):
    OK = 0            # payload: the JSON answer
    MODEL_ERROR = 1   # the model (or score.py) raised; payload: JSON error
    BAD_REQUEST = 2   # the body could not be turned into model input; payload: JSON error


Reply = tuple[int, bytes]   # (ReplyStatus, payload)


@dataclass(frozen=True)
class ReplicaEnvironment:
    """The environment a replica runs in: its exact requirements, and on this machine the
    interpreter of its built virtualenv (None when the backend builds it where replicas run)."""
    key: str                          # names the build: the lock, the Python and the platform
    requirements: tuple[str, ...]     # index options first, then name==version pins
    python: Path | None = None


@dataclass(frozen=True)
class DatastoreSource:
    """Where a replica's node reads a snapshot itself: the workspace's default datastore (its
    document, the secret included, so never printed), the snapshot's files, the node cache's
    bound, and for code the folder its scoring script is in."""
    document: dict = field(repr=False, compare=False)
    files: tuple[dict, ...] = field(repr=False, compare=False)
    cache_bytes: int
    root: str = ""

    def to_wire(self) -> dict:
        return {"document": self.document, "files": list(self.files), "cache_bytes": self.cache_bytes,
                "root": self.root}


@dataclass(frozen=True)
class ReplicaSpec:
    """Everything a backend needs to start one replica, validated and with its defaults applied.
    Snapshots are named by path on the server and by sha256, so that a backend whose replicas run
    elsewhere can ship them and check them on arrival."""
    endpoint: str
    deployment: str
    replica_id: str
    model_key: str                 # what `send` names; a replica may later hold several models
    model_type: str
    model_dir: Path
    model_sha256: str
    code_dir: Path | None          # the code snapshot's root, with its sha256
    code_sha256: str | None
    scoring_script: str | None     # relative to code_dir
    env: dict[str, str]
    batching: Batching
    resources: Resources
    log_path: Path                 # on the server: the replica's log, or its supervisor notes
    compute: str = "local"
    environment: ReplicaEnvironment | None = None   # None: the server's own interpreter
    placement: str = "dedicated"   # or "shared": one model among many in a multi-model worker
    fast_path: bool | str = FAST_PATH_DEFAULT   # the deployment's setting (runtime/fast_path.py)
    model_source: DatastoreSource | None = None   # a node that is not the server's reads the model here
    code_source: DatastoreSource | None = None    # ... and the code

    @property
    def script_path(self) -> Path | None:
        return self.code_dir / self.scoring_script if self.code_dir and self.scoring_script else None


@runtime_checkable
class ReplicaHandle(Protocol):
    """One running replica, as the control plane and data plane see it."""
    id: str
    models: frozenset[str]   # model keys it holds
    info: dict               # what it reported when ready (pid, model metadata)
    # Set by the server when the replica is created: called with (endpoint, deployment, size) for
    # each model call that scored several requests, when the backend can tell.
    on_batch: Callable[[str, str, int], None] | None
    # Likewise: (endpoint, deployment) when its model was evicted from memory, and (endpoint,
    # deployment, load seconds) when it was loaded again. Only a replica that shares a worker
    # with other models ever calls them.
    on_evicted: Callable[[str, str], None] | None
    on_reloaded: Callable[[str, str, float], None] | None

    # Set by the supervisor: False after a missed liveness probe, until the replica answers again.
    responsive: bool
    # Set by the supervisor: called when a request on this replica is given up on (`give_up`),
    # so that a replica whose model call outlived a request's timeout is replaced at once.
    on_late: Callable[[], None] | None

    @property
    def inflight(self) -> int:
        """Requests sent and not answered yet, except those given up on (`give_up`): the load
        that routing balances."""

    @property
    def unanswered(self) -> int:
        """Every request sent and not answered yet, given up on or not: what a drain waits for."""

    @property
    def late(self) -> int:
        """Requests given up on (they timed out) that the replica has still not answered: more
        than zero means it is stuck or overloaded, and routing sends it nothing new."""

    @property
    def answered(self) -> int:
        """Answers received so far (a replica that answered is not crash-looping)."""

    @property
    def busy_s(self) -> float:
        """How long the replica's current model call has been running, from what it last said (0: idle)."""

    @property
    def overdue_at(self) -> float:
        """When (on the event loop's clock) its current model call becomes far older than its calls
        usually take (`overdue_after`); infinity while idle. Routing sends an overdue replica
        nothing new, and a deployment whose every replica is overdue may start a spare."""

    @property
    def closed(self) -> bool: ...

    async def ready(self) -> None:
        """Wait until the model is loaded; raises InitFailed."""

    def send(self, model: str, kind: RequestKind, body: bytes, header_length: int = 0,
             request_id: str = "") -> asyncio.Future:
        """Send one request; the future resolves to a Reply, or fails with ReplicaGone. The
        caller may stop waiting on it: the handle keeps counting it in `inflight` until the
        replica answers. `header_length` is a V2 request's JSON header length (0: all JSON);
        `request_id` the gateway's id, which the replica's log lines carry."""

    def give_up(self, fut: asyncio.Future) -> None:
        """The caller stopped waiting for `fut` (it timed out): it leaves `inflight` and counts
        in `late` until the replica answers it."""

    def queued_behind(self, fut: asyncio.Future) -> bool:
        """Whether `fut`'s request surely waits behind the replica's current model call (it was
        sent after the requests that call can hold), so it never reached the model. False when
        the backend cannot tell."""

    async def probe(self, timeout: float) -> bool:
        """Liveness: True when the replica answered within `timeout` (even while a model call is
        running; `busy_s` then says for how long); raises ReplicaGone."""

    def memory_bytes(self) -> int | None:
        """Resident memory now, if the backend can tell."""

    def cpu_seconds(self) -> float | None:
        """CPU time the replica has used so far (user + system), if the backend can tell."""

    async def wait_closed(self) -> int | None:
        """Wait until the replica is gone; its exit code, if known."""

    async def stop(self, grace_s: float = 5.0) -> None:
        """Let it finish, then terminate it; idempotent."""

    def note(self, message: str) -> None:
        """Write a supervisor event where the replica's own log is, so get-logs shows why."""

    async def log_tail(self, lines: int) -> str:
        """The last lines of the replica's own log, wherever it runs."""

    def describe(self) -> dict:
        """Where it runs, for `show` (pid, node, log)."""

    def address(self) -> dict | None:
        """How another server of the workspace reaches it (host, port, secret), kept in the store;
        None for a replica only this server can reach (a local process)."""

    def disconnect(self) -> None:
        """Let go of it without stopping it: it serves on for the other servers."""


class Backend(Protocol):
    name: str

    async def warm(self) -> None:
        """Prepare ahead of the first replica (a warm parent, a cluster connection); best effort."""

    async def start(self, spec: ReplicaSpec) -> ReplicaHandle:
        """Launch a replica; usable once `handle.ready()` returns."""

    async def shutdown(self) -> None:
        """Release what `warm` and `start` acquired; called after every replica is stopped."""

    def fault(self, compute: str) -> str | None:
        """Why `compute` cannot run replicas now, if its last use failed (None: none known)."""

    async def connect(self, spec: ReplicaSpec, address: dict) -> ReplicaHandle:
        """This server's connection to a replica another server of the workspace started, at the
        `address()` its handle gave there; usable once `handle.ready()` returns."""

    async def adopt(self, replica_ids: dict[str, set[str]] | None) -> None:
        """This server took the lead and serves these replicas (by compute) as its own: whatever
        it removes of earlier servers, not these. None: it follows, and removes nothing."""

    def release(self, python: Path) -> None:
        """An environment's build at `python` is going away: what runs it ahead of need may stop."""


@dataclass
class Pending:
    """Requests in flight on one replica, matched to their answers by id; `late` are those whose
    caller gave up waiting."""
    futures: dict[int, asyncio.Future] = field(default_factory=dict)
    late: set[int] = field(default_factory=set)
    next_id: int = 0
    answered: int = 0

    @property
    def inflight(self) -> int:
        return len(self.futures) - len(self.late)

    def add(self, fut: asyncio.Future) -> int:
        self.next_id = (self.next_id + 1) & 0xFFFFFFFF
        self.futures[self.next_id] = fut
        return self.next_id

    def give_up(self, fut: asyncio.Future) -> None:
        for req_id, f in self.futures.items():  # only on a timeout, among a few requests
            if f is fut:
                self.late.add(req_id)
                return

    def behind(self, fut: asyncio.Future, first: int) -> bool:
        """Whether `fut` is unanswered and not among the `first` oldest unanswered requests (a
        replica takes them in order: they are the only ones its current call can hold)."""
        for n, f in enumerate(self.futures.values()):   # only on a timeout, among a few requests
            if f is fut:
                return n >= first
        return False

    def resolve(self, req_id: int, reply: Reply) -> None:
        fut = self.futures.pop(req_id, None)
        if fut is None:
            return
        self.late.discard(req_id)
        self.answered += 1
        if not fut.done():
            fut.set_result(reply)

    def fail_all(self, exc: Exception, behind: Exception | None = None, first: int = 0) -> None:
        """Fail every request with `exc`; with `behind`, those after the `first` oldest with it."""
        for n, fut in enumerate(self.futures.values()):
            if not fut.done():
                fut.set_exception(behind if behind is not None and n >= first else exc)
                fut.exception()  # retrieved: nobody may be waiting on a request that timed out
        self.futures.clear()
        self.late.clear()
