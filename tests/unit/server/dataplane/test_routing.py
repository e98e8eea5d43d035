"""Routing snapshots, admission and the gateway's forwarding, on fake replicas."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest

from modelfleet.backends.base import ReplicaGone, ReplicaSpec, RequestKind
from modelfleet.runtime import protocol
from modelfleet.server.dataplane.admission import Admission, Saturated
from modelfleet.server.dataplane.gateway import Gateway
from modelfleet.server.dataplane.routing import DeploymentSnapshot, EndpointSnapshot, Router, RoutingTable
from modelfleet.schema.deployment_settings import Batching, RequestSettings, Resources

from tests.fakes import FakeReplica, settle, until


def run(coro):
    return asyncio.run(coro)


def replica(n: int) -> FakeReplica:
    spec = ReplicaSpec("ep", "blue", f"blue-{n}", "k", "sklearn", None, "0" * 64, None, None, None, {},
                       Batching(), Resources(), None)
    return FakeReplica(spec, n)


def snapshot(router: Router, replicas=(), name="blue", **settings) -> DeploymentSnapshot:
    return DeploymentSnapshot("ep", name, "k", RequestSettings(**settings), tuple(replicas),
                              router.admission("ep", name))


async def _served_by(router: Router, replicas: list, newcomer: FakeReplica, answer: asyncio.Future,
                     **settings) -> int:
    """Publish `replicas` (with `newcomer`: a replacement or a spare); the status of the held
    request `answer`, once `newcomer` has it and answers."""
    publish(router, snapshot(router, replicas, **settings))
    await until(lambda: newcomer.unanswered)
    newcomer.answer_all()
    return (await answer)[0]


def publish(router: Router, *deps: DeploymentSnapshot, traffic=None) -> EndpointSnapshot:
    ep = EndpointSnapshot.build("ep", "key", ("a", "b"), traffic or {deps[0].name: 100}, {},
                               {d.name: d for d in deps})
    router.publish(RoutingTable({"ep": ep}, ready=True))
    return ep


def test_wire_kinds_and_statuses_match_the_replica_protocol():
    assert (RequestKind.SCORE, RequestKind.V2_INFER) == (protocol.SCORE, protocol.V2_INFER)


def test_admission_queues_beyond_capacity_and_hands_slots_over_in_order():
    async def scenario():
        adm = Admission(capacity=1, max_queue=1)
        loop = asyncio.get_running_loop()
        await adm.admit(loop.time() + 1)
        waiter = asyncio.ensure_future(adm.admit(loop.time() + 1))
        await settle()
        with pytest.raises(Saturated):
            await adm.admit(loop.time() + 1)
        adm.release()
        await waiter                      # handed over: counted at hand-off
        assert adm.inflight == 1 and not adm.waiters
        with pytest.raises(TimeoutError):
            await adm.admit(loop.time() + 0.01)
    run(scenario())


def test_a_bigger_snapshot_wakes_queued_requests():
    async def scenario():
        router = Router()
        publish(router, snapshot(router, max_concurrent_requests_per_instance=1))
        adm = router.admission("ep", "blue")
        waiter = asyncio.ensure_future(adm.admit(asyncio.get_running_loop().time() + 5))
        await settle()
        assert not waiter.done()          # no replica yet: capacity 0
        publish(router, snapshot(router, [replica(1)], max_concurrent_requests_per_instance=1))
        await waiter
        assert adm.capacity == 1 and adm.inflight == 1
    run(scenario())


def test_choose_follows_the_weights_and_pick_the_least_loaded_open_replica():
    run(_choose_and_pick())


async def _choose_and_pick():
    router = Router()
    blue, green = snapshot(router, [replica(1)]), snapshot(router, [replica(2)], name="green")
    ep = publish(router, blue, green, traffic={"blue": 90, "green": 10})
    random.seed(7)
    counts = Counter(ep.choose().name for _ in range(2000))
    assert 1650 < counts["blue"] < 1950 and counts["blue"] + counts["green"] == 2000
    busy, idle, dead = replica(1), replica(2), replica(3)
    busy.send("k", RequestKind.SCORE, b"")
    dead.die()
    assert snapshot(router, [busy, dead, idle]).pick() is idle
    assert snapshot(router, [dead]).pick() is None


def test_forward_retries_a_request_whose_replica_died_on_a_sibling():
    async def scenario():
        router = Router()
        first, second = replica(1), replica(2)
        dep = snapshot(router, [first, second])
        publish(router, dep)
        gateway = Gateway(router)
        answer = asyncio.ensure_future(gateway.forward(dep, RequestKind.SCORE, b"{}"))
        await settle()
        victim, sibling = (first, second) if first.inflight else (second, first)
        victim.die()
        await settle()
        sibling.answer_all(b'"from the sibling"')
        assert await answer == (200, b'"from the sibling"', "")
    run(scenario())


def test_a_request_that_kills_two_replicas_gets_502():
    async def scenario():
        router = Router()
        replicas = [replica(1), replica(2)]
        dep = snapshot(router, replicas)
        publish(router, dep)
        answer = asyncio.ensure_future(Gateway(router).forward(dep, RequestKind.SCORE, b"{}"))
        for _ in range(2):
            await settle()
            next(r for r in replicas if r.inflight).die()
        status, payload, message = await answer
        assert status == 502 and payload is None and "twice" in message
    run(scenario())


def test_a_timed_out_request_frees_its_slots_and_its_replica_gets_nothing_new_until_it_answers():
    async def scenario():
        router = Router()
        stuck, sibling = replica(1), replica(2)
        dep = snapshot(router, [stuck, sibling], request_timeout_ms=20, max_concurrent_requests_per_instance=1)
        publish(router, dep)
        status, _, _ = await Gateway(router).forward(dep, RequestKind.SCORE, b"{}")
        adm = router.admission("ep", "blue")
        assert status == 408 and adm.inflight == 0            # the deployment's slot is free again
        assert (stuck.inflight, stuck.unanswered, stuck.late) == (0, 1, 1)   # a drain still waits for it
        for _ in range(3):                                      # new requests go to the sibling
            assert dep.pick() is sibling
            nxt = asyncio.ensure_future(Gateway(router).forward(dep, RequestKind.SCORE, b"{}"))
            await settle()
            sibling.answer_all()
            assert (await nxt)[0] == 200
        assert sibling.answered == 3 and stuck.unanswered == 1  # nothing more was sent to the stuck one
        stuck.answer_all()                                      # the late answer: it is routable again
        assert (stuck.late, stuck.unanswered) == (0, 0) and dep.pick() is stuck
    run(scenario())


@pytest.mark.parametrize("unfit", ["missed a liveness probe", "in a call far older than usual"])
def test_an_unfit_replica_is_skipped_and_a_request_waits_rather_than_queue_behind_it(unfit):
    async def scenario():
        router = Router()
        stopped, fresh = replica(1), replica(2)
        dep = snapshot(router, [stopped], request_timeout_ms=2000)
        publish(router, dep)
        stalls = []
        dep.admission.on_stall = lambda: stalls.append(1)
        if unfit == "missed a liveness probe":
            stopped.responsive = False
        else:
            stopped.overdue_at = 0.0
        assert dep.pick() is None
        answer = asyncio.ensure_future(Gateway(router).forward(dep, RequestKind.SCORE, b"{}"))
        await until(lambda: stalls)                             # the deployment may start a spare
        assert stopped.unanswered == 0 and not answer.done()     # waiting for a replica, not queued on it
        assert await _served_by(router, [stopped, fresh], fresh, answer, request_timeout_ms=2000) == 200
        assert stalls == [1]                                     # told once per request
    run(scenario())


def test_no_ready_replica_is_503_and_a_full_queue_429():
    async def scenario():
        router = Router()
        dep = snapshot(router, [], request_timeout_ms=10)
        publish(router, dep)
        status, _, message = await Gateway(router).forward(dep, RequestKind.SCORE, b"{}")
        assert status == 503 and "no ready replica" in message
        full = snapshot(router, [replica(1)], max_concurrent_requests_per_instance=1, max_queue_size=0)
        publish(router, full)
        first = asyncio.ensure_future(Gateway(router).forward(full, RequestKind.SCORE, b"{}"))
        await settle()
        status, _, _ = await Gateway(router).forward(full, RequestKind.SCORE, b"{}")
        assert status == 429
        first.cancel()
    run(scenario())


def test_a_gone_deployment_drops_its_admission():
    router = Router()
    publish(router, snapshot(router))
    router.publish(RoutingTable({}, ready=True))
    assert router.admission("ep", "blue").capacity == 0


def test_replica_gone_is_raised_by_a_closed_handle():
    async def scenario():
        r = replica(1)
        r.die()
        with pytest.raises(ReplicaGone):
            r.send("k", RequestKind.SCORE, b"")
    run(scenario())


def test_a_call_is_overdue_at_ten_times_its_usual_duration_and_never_before_the_floor():
    async def scenario():
        from modelfleet.backends.calls import OVERDUE_FLOOR_S, CallAge
        loop = asyncio.get_running_loop()
        call = CallAge(loop)
        assert call.busy_s == 0.0 and call.overdue_at == float("inf")
        call.heard(0.1, 0.05)                                     # 100 ms into a call; calls take 50 ms
        assert abs(call.overdue_at - (loop.time() - 0.1 + 0.5)) < 0.01 and call.busy_s >= 0.1
        call.heard(0.1, 0.001)                                    # calls take 1 ms: the floor counts
        assert abs(call.overdue_at - (loop.time() - 0.1 + OVERDUE_FLOOR_S)) < 0.01
        call.idle()                                               # an answer came: the call ended
        assert call.busy_s == 0.0 and call.overdue_at == float("inf") and call.usual_s == 0.001
        call.heard(0.0, 0.0)                                      # an idle heartbeat keeps the usual
        assert call.usual_s == 0.001
        first = CallAge(loop)
        first.heard(5.0, 0.0)                                     # no call has finished: nothing is usual
        assert first.busy_s >= 5.0 and first.overdue_at == float("inf")
    run(scenario())


def test_a_heartbeat_carries_the_usual_call_duration():
    assert protocol.split_pong(protocol.pong(2**20, 1500, 2500)) == (2**20, 1.5, 0.0025)


def test_a_request_queued_behind_a_stuck_call_is_retried_elsewhere_when_that_replica_is_replaced():
    async def scenario():
        loop = asyncio.get_running_loop()
        router = Router()
        stuck, sibling = replica(1), replica(2)
        dep = snapshot(router, [stuck], request_timeout_ms=50)
        publish(router, dep)
        stuck.send("k", RequestKind.SCORE, b"{}")                # the call that hangs
        timeout_at = loop.time() + 0.05
        queued = asyncio.ensure_future(Gateway(router).forward(dep, RequestKind.SCORE, b"{}"))
        await until(lambda: stuck.unanswered == 2)
        stuck.overdue_at = 0.0                                    # its call is far older than usual
        await until(lambda: loop.time() > timeout_at + 0.01)
        assert not queued.done()                                  # past its timeout: it waits for the kill
        stuck.die()                                               # the supervisor killed the stuck replica
        assert await _served_by(router, [stuck, sibling], sibling, queued, request_timeout_ms=50) == 200
    run(scenario())


def test_the_request_in_a_stuck_call_gets_408_at_its_timeout():
    async def scenario():
        router = Router()
        first = replica(1)
        dep = snapshot(router, [first], request_timeout_ms=50)
        publish(router, dep)
        answer = asyncio.ensure_future(Gateway(router).forward(dep, RequestKind.SCORE, b"{}"))
        await until(lambda: first.unanswered)
        first.overdue_at = 0.0
        assert (await answer)[0] == 408 and first.late == 1      # the oldest: no grace
    run(scenario())


def test_a_request_queued_behind_hung_calls_on_two_replicas_in_turn_is_no_cause_and_no_502():
    async def scenario():
        router = Router()
        first, second, third = replica(1), replica(2), replica(3)
        publish(router, snapshot(router, [first]))
        first.send("k", RequestKind.SCORE, b"{}")                 # a call that hangs
        dep = router.table.endpoints["ep"].deployments["blue"]
        answer = asyncio.ensure_future(Gateway(router).forward(dep, RequestKind.SCORE, b"{}"))
        await until(lambda: first.unanswered == 2)
        second.send("k", RequestKind.SCORE, b"{}")                # the next replica hangs too
        for stuck, nxt in ((first, second), (second, third)):
            stuck.overdue_at = 0.0
            publish(router, snapshot(router, [stuck, nxt]))
            stuck.die()                                           # replaced: the request goes on
            await until(lambda: nxt.unanswered == (2 if nxt is second else 1))
        third.answer_all()
        assert (await answer)[0] == 200
    run(scenario())
