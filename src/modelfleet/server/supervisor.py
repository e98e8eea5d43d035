"""Supervision of serving replicas: liveness probes, the memory limit, and noticing death.

One `watch` task per ready replica. It probes on the liveness probe's period, checks resident
memory against `resources.limits.memory`, and kills a replica that misses `failure_threshold`
probes in a row or grows past its limit. When a READY replica's connection closes, for whatever
reason, it moves to FAILED and the controller is told (`lost`), which drops it from routing and
restarts it with backoff; a replica stopped on purpose (DRAINING or STOPPED) is left alone.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

from ..backends.base import ReplicaGone
from ..specs import DeploymentRecord
from .clock import Clock
from .replicas import Replica, ReplicaState as S, transition

log = logging.getLogger("modelfleet.supervisor")

MEMORY_CHECK_S = 0.5


class Supervisor:
    def __init__(self, clock: Clock, lost: Callable[[Replica, int | None], None]):
        self.clock = clock
        self.lost = lost

    @staticmethod
    def note(r: Replica, message: str) -> None:
        """A supervisor event, in the server log and in the replica's own log (get-logs)."""
        log.warning("%s: %s", r.id, message)
        r.handle.note(message)

    async def watch(self, r: Replica, spec_of: Callable[[], DeploymentRecord | None]) -> None:
        closed = asyncio.ensure_future(r.handle.wait_closed())
        misses = 0
        next_probe = self.clock.now()
        while r.state is S.READY:
            spec = spec_of()
            if spec is None:
                break
            probe, limit = spec.liveness_probe, spec.resources.memory_limit_bytes
            if await self.clock.wait(closed, MEMORY_CHECK_S if limit else probe.period):
                break
            if r.state is not S.READY:
                break
            rss = r.handle.memory_bytes() if limit else None
            if rss is not None and rss > limit:
                self.note(r, f"replica exceeded its memory limit ({rss // 2**20} MiB > "
                             f"{limit // 2**20} MiB); killing it")
                await r.handle.stop(0.0)
                break
            if self.clock.now() < next_probe:
                continue
            next_probe = self.clock.now() + probe.period
            try:
                alive = await r.handle.probe(probe.timeout)
            except ReplicaGone:
                break
            misses = 0 if alive else misses + 1
            if misses >= probe.failure_threshold:
                self.note(r, f"replica missed {misses} liveness probes; killing it")
                await r.handle.stop(0.5)
                break
        code = await closed
        if r.state is not S.READY:
            return  # stopped on purpose
        transition(r, S.FAILED, f"exited with code {code}")
        self.note(r, f"replica ({_where(r)}) of {r.endpoint}/{r.deployment} exited with code {code}; restarting")
        self.lost(r, code)
        await r.handle.stop(0.0)
        transition(r, S.STOPPED)


def _where(r: Replica) -> str:
    info = r.handle.describe()
    return f"pid {info['pid']}" if info.get("pid") else r.id
