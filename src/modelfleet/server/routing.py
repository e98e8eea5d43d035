"""In-memory routing snapshots: what the gateway reads on every request, built by the controller.

The controller replaces an endpoint's `EndpointRoute` whole (one dict assignment) when traffic,
keys or auth change, so a request sees either the old table or the new one, never a mix.
`DeploymentRoute` objects live as long as their deployment: the controller swaps their replica
list in one assignment during a rolling update, and they carry the admission queue.
"""

from __future__ import annotations

import asyncio
import bisect
import random
from collections import deque
from dataclasses import dataclass, field

from ..backends.base import Replica


class Saturated(Exception):
    """The deployment's queue is full (429)."""


@dataclass(eq=False)
class DeploymentRoute:
    endpoint: str
    name: str
    timeout_s: float = 5.0
    max_concurrent: int = 16          # per replica
    max_queue: int = 512
    max_body: int = 16 * 1024 * 1024
    replicas: list[Replica] = field(default_factory=list)   # ready ones only; replaced whole
    inflight: int = 0
    waiters: deque = field(default_factory=deque)
    header: list = field(init=False)   # the response header naming this deployment

    def __post_init__(self) -> None:
        self.header = [(b"azureml-model-deployment", self.name.encode())]

    def apply_settings(self, rs: dict) -> None:
        self.timeout_s = rs.get("request_timeout_ms", 5000) / 1000.0
        self.max_concurrent = rs.get("max_concurrent_requests_per_instance", 16)
        self.max_queue = rs.get("max_queue_size", 512)
        self.max_body = rs.get("max_body_bytes", 16 * 1024 * 1024)
        self.wake()  # capacity may have grown

    def has_capacity(self) -> bool:
        return self.inflight < self.max_concurrent * len(self.replicas)

    def pick(self) -> Replica | None:
        """The ready replica with the fewest requests in flight."""
        best = None
        for r in self.replicas:
            if (best is None or r.inflight < best.inflight) and not r.conn.closed.done():
                best = r
        return best

    async def admit(self, deadline: float) -> None:
        """Take a slot, waiting in the bounded queue if none is free; raises Saturated or
        TimeoutError. A slot handed to a waiter is counted at hand-off (see `wake`), so nobody
        can slip in between, and is given back if the waiter is gone by then."""
        if self.has_capacity() and not self.waiters:
            self.inflight += 1
            return
        if len(self.waiters) >= self.max_queue:
            raise Saturated()
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self.waiters.append(fut)
        timer = loop.call_at(deadline, lambda: fut.done() or fut.set_exception(TimeoutError()))
        try:
            await fut
        except BaseException:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                self.release()  # handed a slot, then cancelled before using it
            elif fut in self.waiters:
                self.waiters.remove(fut)
            raise
        finally:
            timer.cancel()

    def release(self) -> None:
        self.inflight -= 1
        self.wake()

    def wake(self) -> None:
        """Hand free slots to queued requests (also called when replicas are added)."""
        free = self.max_concurrent * len(self.replicas) - self.inflight
        while free > 0 and self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                self.inflight += 1
                fut.set_result(None)
                free -= 1


@dataclass(eq=False)
class EndpointRoute:
    name: str
    auth_mode: str
    keys: tuple[bytes, ...]
    deployments: dict[str, DeploymentRoute]
    weights: list[int] = field(default_factory=list)      # cumulative percent
    live: list[DeploymentRoute] = field(default_factory=list)
    mirror: DeploymentRoute | None = None
    mirror_pct: float = 0.0

    @classmethod
    def build(cls, name: str, auth_mode: str, keys: tuple[str, ...], traffic: dict[str, int],
              mirror: dict[str, int], deployments: dict[str, DeploymentRoute]) -> "EndpointRoute":
        route = cls(name, auth_mode, tuple(k.encode() for k in keys), deployments)
        total = 0
        for dep, pct in sorted(traffic.items()):
            if pct > 0 and dep in deployments:
                total += pct
                route.weights.append(total)
                route.live.append(deployments[dep])
        for dep, pct in mirror.items():
            if pct > 0 and dep in deployments:
                route.mirror, route.mirror_pct = deployments[dep], pct / 100.0
        return route

    def choose(self) -> DeploymentRoute | None:
        if not self.live:
            return None
        if len(self.live) == 1:
            return self.live[0]
        return self.live[bisect.bisect_right(self.weights, random.random() * self.weights[-1])]
