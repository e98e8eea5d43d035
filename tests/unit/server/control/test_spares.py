"""Spare replicas while every replica is stuck: the pure decisions (spares.py), then the
controller carrying them out on a fake backend and a fake clock (the harness of test_controller.py)."""

from __future__ import annotations

import asyncio

from modelfleet.backends.base import RequestKind
from modelfleet.schema.deployment_settings import ScaleSettings
from modelfleet.server.control import spares
from modelfleet.server.dataplane.gateway import Gateway

from tests.fakes import until
from .test_controller import h, run  # noqa: F401  (h is a fixture)


def test_a_stall_starts_one_spare_at_a_time_within_the_limit():
    state = spares.SpareState()
    assert not spares.on_stall(state, allowed=1, starting=True)   # a replica starting will take it
    assert spares.on_stall(state, allowed=1, starting=False) and state.count == 1
    assert not spares.on_stall(state, allowed=1, starting=False) and state.count == 1
    assert not spares.on_stall(spares.SpareState(), allowed=0, starting=False)


def test_the_limit_is_spare_instances_and_max_instances_when_autoscaled():
    assert spares.limit(ScaleSettings(), wanted=2) == 1
    assert spares.limit(ScaleSettings(spare_instances=3), wanted=2) == 3
    auto = ScaleSettings(type="target_utilization", min_instances=1, max_instances=4, spare_instances=3)
    assert spares.limit(auto, wanted=2) == 2 and spares.limit(auto, wanted=4) == 0


def test_spares_stop_only_after_a_calm_and_a_lost_replica_uses_one_up():
    state = spares.SpareState(count=2)
    spares.look(state, stuck=False, now=100.0)
    spares.look(state, stuck=True, now=105.0)                     # stuck again: the calm starts over
    spares.look(state, stuck=False, now=106.0)
    spares.look(state, stuck=False, now=106.0 + spares.CALM_S - 0.1)
    assert state.count == 2
    spares.look(state, stuck=False, now=106.0 + spares.CALM_S)
    assert state.count == 0
    state.count = 1
    spares.stood_in(state)
    spares.stood_in(state)
    assert state.count == 0


def _score(h):
    dep = h.router.table.endpoints["ep"].deployments["blue"]
    return asyncio.ensure_future(Gateway(h.router).forward(dep, RequestKind.SCORE, b"{}"))


def test_every_replica_overdue_while_a_request_waits_starts_a_spare_that_then_replaces_the_stuck_one(h):
    async def scenario():
        h.put(instance_count=2, request_settings={"request_timeout_ms": 5000})
        await h.converge()
        first, second = h.backend.live("blue")
        for r in (first, second):
            r.overdue_at = 0.0                                    # both in a call far older than usual
        answer = _score(h)
        spare = (await until(lambda: [r for r in h.backend.live("blue") if r not in (first, second)]))[0]
        await until(lambda: spare in h.routed() and spare.unanswered)
        spare.answer_all()
        assert (await answer)[0] == 200                           # the held request went to the spare
        assert first.unanswered == second.unanswered == 0
        first.busy_s = 5.0                                        # past the timeout: replaced...
        await h.clock.advance(0.25)
        await until(lambda: first.closed)
        await h.reconcile()
        assert set(h.routed()) == {second, spare}                 # ...by the spare: nothing else starts
        assert len(h.backend.started) == 3
    run(scenario())


def test_a_spare_stops_once_no_replica_has_been_stuck_for_a_while(h):
    async def scenario():
        h.put(instance_count=1)
        await h.converge()
        only = h.backend.live("blue")[0]
        only.overdue_at = 0.0
        answer = _score(h)
        spare = (await until(lambda: [r for r in h.backend.live("blue") if r is not only]))[0]
        await until(lambda: spare.unanswered)
        spare.answer_all()
        await answer
        only.overdue_at = float("inf")                            # the slow call ended by itself
        for _ in range(int(spares.CALM_S) + 2):
            await h.clock.advance(1)
            await h.reconcile()
        await until(lambda: len(h.routed()) == 1)
        assert len(h.backend.live("blue")) == 1
    run(scenario())


def test_no_spare_when_spare_instances_is_zero(h):
    async def scenario():
        h.put(instance_count=1, request_settings={"request_timeout_ms": 200},
              scale_settings={"spare_instances": 0})
        await h.converge()
        only = h.backend.live("blue")[0]
        only.overdue_at = 0.0
        status, _, _ = await _score(h)
        assert status == 503 and len(h.backend.started) == 1
    run(scenario())
