"""What every backend provides: start a replica for a deployment, stop it."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..runtime import protocol as p


class ReplicaGone(Exception):
    """The replica's connection closed (the process exited or was killed)."""


class InitFailed(Exception):
    """init() raised, or the replica exited before it became ready."""


@dataclass
class ReplicaSpec:
    endpoint: str
    deployment: str
    replica_id: str
    model_type: str
    model_dir: Path
    scoring_script: Path | None
    env: dict[str, str]
    max_batch_size: int
    max_batch_wait_ms: float
    log_path: Path


class ReplicaConnection(asyncio.Protocol):
    """Many requests in flight over one replica socket, matched to their answers by id."""

    def __init__(self):
        self.loop = asyncio.get_running_loop()
        self.pending: dict[int, asyncio.Future] = {}
        self.ready: asyncio.Future = self.loop.create_future()
        self.closed: asyncio.Future = self.loop.create_future()
        self.transport = None
        self._late: dict[asyncio.Future, object] = {}   # timed-out requests still running
        self._buf = bytearray()
        self._next_id = 0

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buf += data
        for rid, kind, payload in p.split_frames(self._buf):
            if kind in (p.READY, p.INIT_FAILED):
                if not self.ready.done():
                    self.ready.set_result((kind, payload))
                continue
            fut = self.pending.pop(rid, None)
            if fut is None:
                continue
            if not fut.done():
                fut.set_result((kind, payload))
            elif fut in self._late:
                self._late.pop(fut)()

    def connection_lost(self, exc) -> None:
        gone = ReplicaGone("replica connection closed")
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(gone)
        self.pending.clear()
        for callback in self._late.values():
            callback()
        self._late.clear()
        if not self.ready.done():
            self.ready.set_exception(InitFailed("replica exited before it became ready"))
        if not self.closed.done():
            self.closed.set_result(None)

    def send(self, kind: int, payload: bytes = b"") -> asyncio.Future:
        if self.closed.done():
            raise ReplicaGone("replica connection closed")
        self._next_id = (self._next_id + 1) & 0xFFFFFFFF
        fut = self.loop.create_future()
        self.pending[self._next_id] = fut
        self.transport.write(p.frame(self._next_id, kind, payload))
        return fut

    def on_late(self, fut: asyncio.Future, callback) -> None:
        """Call `callback` when the answer to a request that already timed out arrives."""
        self._late[fut] = callback

    def forget(self, fut: asyncio.Future) -> None:
        for rid, f in list(self.pending.items()):
            if f is fut:
                del self.pending[rid]
                return

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


@dataclass(eq=False)
class Replica:
    spec: ReplicaSpec
    conn: ReplicaConnection
    pid: int | None = None
    state: str = "starting"        # starting -> ready -> draining -> stopped | failed
    inflight: int = 0
    started_at: float = field(default_factory=time.time)
    handle: object = None          # backend-private (a Popen, an actor handle)

    @property
    def id(self) -> str:
        return self.spec.replica_id

    def to_dict(self) -> dict:
        return {"id": self.id, "pid": self.pid, "state": self.state, "inflight": self.inflight,
                "started_at": self.started_at, "log": str(self.spec.log_path)}


class Backend(Protocol):
    name: str

    async def start(self, spec: ReplicaSpec) -> Replica:
        """Launch the replica; it is usable once `replica.conn.ready` resolves to READY."""

    async def stop(self, replica: Replica, grace_s: float = 5.0) -> None:
        """Close its connection, then terminate the process; idempotent."""

    def exit_code(self, replica: Replica) -> int | None: ...
