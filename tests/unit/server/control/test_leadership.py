"""Leadership over the lease, with a fake clock and a store that answers, fails or hangs."""

from __future__ import annotations

import asyncio
import threading

import pytest

from modelfleet.domain.errors import StorageError
from modelfleet.store.leases import Lease, decide

from tests.fakes import FakeClock, settle
from modelfleet.server.control.leadership import Leadership

DURATION = 8.0


class FakeLeases:
    """The lease row in memory; `mode` makes the database answer, fail, or hang."""

    def __init__(self, clock: FakeClock):
        self.clock = clock
        self.lease: Lease | None = None
        self.mode = "ok"
        self.gate = threading.Event()

    def claim(self, server_id: str, duration_s: float):
        if self.mode == "fail":
            raise StorageError("database write failed: connection refused")
        if self.mode == "hang":
            self.gate.wait(30)
            raise StorageError("the connection was cut")
        lease = decide(self.lease, server_id, self.clock.t, duration_s)
        if lease is not None:
            self.lease = lease
        return lease

    def release(self, server_id: str) -> None:
        pass


class Events:
    def __init__(self):
        self.log: list[tuple] = []

    async def lead(self, fence):
        self.log.append(("lead", fence.epoch))

    async def follow(self, why):
        self.log.append(("follow", why))


async def _tick_until(clock, leadership, done, limit_s=60.0):
    """Advance the fake clock a little at a time until `done()` (the loop's own ticks run)."""
    for _ in range(int(limit_s / 0.25)):
        if done():
            return
        await clock.advance(0.25)
        await asyncio.sleep(0.01)   # let a claim running in a worker thread come back
    raise AssertionError("the condition did not come true")


RUNNING: list[Leadership] = []   # the scenario's, stopped after it


async def _started(store, name: str, clock, events) -> Leadership:
    leadership = Leadership(store, name, DURATION, clock, events.lead, events.follow)
    await leadership.start()
    RUNNING.append(leadership)
    return leadership


def scenario(fn):
    """A test that runs `fn(clock, store, events)` on an event loop, then stops its leaderships."""
    def test(setup):
        async def run():
            try:
                await fn(*setup)
            finally:
                for leadership in RUNNING:
                    leadership._task.cancel()
                RUNNING.clear()
        asyncio.run(run())
    test.__name__, test.__doc__ = fn.__name__, fn.__doc__
    return test


@pytest.fixture
def setup():
    clock = FakeClock()
    return clock, FakeLeases(clock), Events()


@scenario
async def test_a_lone_server_leads_at_its_first_look_and_keeps_its_term(clock, store, events):
    a = await _started(store, "a", clock, events)
    assert a.leading and a.fence.epoch == 1 and events.log == [("lead", 1)]
    await _tick_until(clock, a, lambda: clock.t >= 1000.0 + 3 * DURATION)
    assert a.leading and events.log == [("lead", 1)]


@scenario
async def test_a_leader_that_cannot_renew_stops_before_its_lease_ends_and_another_takes_over(clock, store,
                                                                                             events):
    a = await _started(store, "a", clock, events)
    b = await _started(store, "b", clock, Events())
    assert a.leading and not b.leading
    a_store = FakeLeases(clock)   # a is cut off from the database; b still reaches it
    a_store.mode = "fail"
    a._store = a_store
    lease_end = store.lease.expires_at
    await _tick_until(clock, a, lambda: not a.leading)
    assert clock.t < lease_end and events.log[-1][0] == "follow"
    await _tick_until(clock, b, lambda: b.leading)
    assert clock.t >= lease_end and b.fence.epoch == 2


@scenario
async def test_a_hung_database_stops_the_leader_in_time_without_piling_up_claims(clock, store, events):
    a = await _started(store, "a", clock, events)
    lease_end = store.lease.expires_at
    store.mode = "hang"
    threads = threading.active_count()
    await _tick_until(clock, a, lambda: not a.leading)
    assert clock.t < lease_end
    assert threading.active_count() <= threads + 1   # one claim hangs, no more were sent after it
    store.gate.set()


@scenario
async def test_a_leader_that_sees_another_holder_follows_at_once(clock, store, events):
    a = await _started(store, "a", clock, events)
    store.lease = Lease("b", 7, clock.t, clock.t + DURATION)   # a paused past its lease; b took it
    await a.tick()
    assert not a.leading and events.log == [("lead", 1), ("follow", "another server holds the lease")]
    await settle()
