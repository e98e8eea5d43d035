"""Admission: how many requests a deployment takes at once, and a bounded queue for the rest.

One `Admission` per deployment lives as long as the deployment, across routing snapshots; the
router resizes it whenever a snapshot changes the deployment's capacity (replicas x
max_concurrent_requests_per_instance). A freed slot is handed to the next waiter and counted at
hand-off, so nobody can slip in between.

It is also what the autoscaler reads: requests that arrived, and the most that were busy (in
flight or queued) at once since it last looked; `on_demand` is called when a request arrives to
a deployment with no capacity at all (scaled to zero), so that a replica starts at once, and
`on_stall` when the gateway holds a request because no replica qualifies (each is overdue, late
or unresponsive), so that a spare may start.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Callable


class Saturated(Exception):
    """The deployment's queue is full (429)."""


class Admission:
    __slots__ = ("inflight", "capacity", "max_queue", "waiters", "arrivals", "peak", "on_demand", "on_stall")

    def __init__(self, capacity: int = 0, max_queue: int = 0):
        self.inflight = 0
        self.capacity = capacity
        self.max_queue = max_queue
        self.waiters: deque[asyncio.Future] = deque()
        self.arrivals = 0
        self.peak = 0
        self.on_demand: Callable[[], None] | None = None
        self.on_stall: Callable[[], None] | None = None

    def take_peak(self) -> int:
        """The most requests busy at once since the last call."""
        now = self.inflight + len(self.waiters)
        peak, self.peak = max(self.peak, now), now
        return peak

    def has_capacity(self) -> bool:
        return self.inflight < self.capacity

    def take(self) -> bool:
        """Take a slot if one is free and nobody queues for it (False: nothing counted)."""
        if self.inflight < self.capacity and not self.waiters:
            self.arrivals += 1
            self.inflight += 1
            if self.inflight > self.peak:
                self.peak = self.inflight
            return True
        return False

    async def admit(self, deadline: float) -> None:
        """Take a slot, waiting in the queue if none is free; raises Saturated or TimeoutError
        (at `deadline`, on the event loop's clock). A slot handed to a waiter that is gone by
        then is given back."""
        if self.take():
            return
        self.arrivals += 1
        if len(self.waiters) >= self.max_queue:
            raise Saturated()
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self.waiters.append(fut)
        busy = self.inflight + len(self.waiters)
        if busy > self.peak:
            self.peak = busy
        if self.capacity == 0 and self.on_demand is not None:
            self.on_demand()
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

    def release(self, _=None) -> None:
        """Give a slot back (usable as a future's done callback)."""
        self.inflight -= 1
        self._wake()

    def resize(self, capacity: int, max_queue: int) -> None:
        self.capacity, self.max_queue = capacity, max_queue
        self._wake()

    def _wake(self) -> None:
        free = self.capacity - self.inflight
        while free > 0 and self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                self.inflight += 1
                fut.set_result(None)
                free -= 1
