"""Supervision of serving replicas: liveness probes, progress, the memory limit, and noticing death.

One `watch` task per ready replica, waking every `TICK_S`. It kills and replaces a replica that

- misses `failure_threshold` liveness probes in a row (probed every `period` seconds from
  `initial_delay` on, each answer awaited `timeout` seconds; a stopped or wedged process). After
  one miss the replica is marked unresponsive and routing sends it nothing new, until it answers
  `success_threshold` probes in a row;
- is in a model call that outlived its request's timeout: the request timed out (the gateway
  gave up on it, which wakes the watch at once) while the call is far older than usual, or the
  call itself has run past the request timeout (its heartbeats say). Nobody waits for that
  answer any more, and the requests sent after it never reached the model. It is
  dropped from routing and its replacement started before it is killed (a hang is not a crash
  loop: no backoff), and the requests queued behind the call are retried elsewhere;
- grows past `resources.limits.memory`.

A replica with requests given up on (`late`) is probed at once instead of at the next period.
When a READY replica's connection closes, for whatever reason, it moves to FAILED and the
controller is told (`lost`, with the reason), which drops it from routing and restarts it with
backoff; a replica stopped on purpose (DRAINING or STOPPED) is left alone.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

from ...backends.base import EXIT_MEMORY_LIMIT, ReplicaGone
from ...schema.wire import DeploymentRecord
from .clock import Clock
from .replicas import Replica, ReplicaState as S, transition

log = logging.getLogger("modelfleet.supervisor")

TICK_S = 0.25


class Supervisor:
    def __init__(self, clock: Clock, lost: Callable[[Replica, int | None, str, bool], None]):
        self.clock = clock
        self.lost = lost

    @staticmethod
    def note(r: Replica, message: str) -> None:
        """A supervisor event, in the server log and in the replica's own log (get-logs)."""
        log.warning("%s: %s", r.id, message)
        r.handle.note(message)

    async def watch(self, r: Replica, spec_of: Callable[[], DeploymentRecord | None]) -> None:
        closed = asyncio.ensure_future(r.handle.wait_closed())
        alarm = _Alarm(closed)
        r.handle.on_late = alarm.ring
        spec = spec_of()
        next_probe = self.clock.now() + (spec.liveness_probe.initial_delay if spec else 0)
        misses = answers = 0
        why = None   # why the supervisor killed it
        hung = False
        while r.state is S.READY:
            spec = spec_of()
            await self.clock.wait(alarm.fut, _next_look(r, spec))
            if spec is None or closed.done() or r.state is not S.READY:
                break
            alarm.rearm()
            probe, limit = spec.liveness_probe, spec.resources.memory_limit_bytes
            timeout_s = spec.request_settings.request_timeout_ms / 1000.0
            rss = r.handle.memory_bytes() if limit else None
            busy_s = r.handle.busy_s
            if rss is not None and rss > limit:
                why = f"exceeded its memory limit ({rss // 2**20} MiB > {limit // 2**20} MiB)"
            elif busy_s >= timeout_s or (r.handle.late and r.handle.overdue_at <= self.clock.now()):
                hung = True   # the call outlived its request's timeout: nobody waits for its answer
                why = (f"has been running one model call for {busy_s:.1f} s, which outlived its request's "
                       f"timeout ({timeout_s:g} s): run() is stuck")
            elif self.clock.now() >= next_probe or r.handle.late:
                next_probe = self.clock.now() + probe.period
                try:
                    alive = await r.handle.probe(probe.timeout)
                except ReplicaGone:
                    break
                if alive:
                    answers += 1
                    if answers >= probe.success_threshold:
                        misses, r.handle.responsive = 0, True
                else:
                    misses, answers, r.handle.responsive = misses + 1, 0, False
                    if misses >= probe.failure_threshold:
                        why = f"missed {misses} liveness probes"
            if why and hung:   # replaced at once: the replacement starts while this one is killed
                transition(r, S.FAILED, why)
                self.note(r, f"replica {why}; killing it and starting another")
                stopping = asyncio.ensure_future(r.handle.stop(0.5))   # before the replacement is placed
                self.lost(r, None, f"replica {r.id} {why}", True)
                await stopping
                closed.cancel()
                transition(r, S.STOPPED)
                return
            if why:
                self.note(r, f"replica {why}; killing it")
                await r.handle.stop(0.5)
                break
        code = await closed
        if r.state is not S.READY:
            return  # stopped on purpose
        if why is None:
            why = (f"reached its memory limit ({spec.resources.limits.memory})"
                   if code == EXIT_MEMORY_LIMIT and spec is not None else f"exited with code {code}")
        transition(r, S.FAILED, why)
        self.note(r, f"replica ({_where(r)}) of {r.endpoint}/{r.deployment} exited with code {code}; restarting")
        self.lost(r, code, f"replica {r.id} {why}", False)
        await r.handle.stop(0.0)
        transition(r, S.STOPPED)


class _Alarm:
    """Wakes a replica's watch before its next look: its connection closed, or a request on it
    timed out (the handle's `on_late`)."""

    def __init__(self, closed: asyncio.Future):
        self.closed = closed
        self.fut = asyncio.get_running_loop().create_future()
        closed.add_done_callback(self.ring)

    def ring(self, _=None) -> None:
        if not self.fut.done():
            self.fut.set_result(None)

    def rearm(self) -> None:
        if self.fut.done() and not self.closed.done():
            self.fut = asyncio.get_running_loop().create_future()


def _next_look(r: Replica, spec: DeploymentRecord | None) -> float:
    """Seconds until the next look: a tick, or sooner if its current call reaches the timeout first."""
    busy_s = r.handle.busy_s
    if not busy_s or spec is None:
        return TICK_S
    return min(TICK_S, max(0.001, spec.request_settings.request_timeout_ms / 1000.0 - busy_s))


def _where(r: Replica) -> str:
    info = r.handle.describe()
    return f"pid {info['pid']}" if info.get("pid") else r.id
