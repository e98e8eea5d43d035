"""The inline lane (dataplane/inline.py) over a real socket on 127.0.0.1: uvicorn with the server's
protocol, a real gateway with telemetry, and fake replicas that echo the body they get (or hold it
until the test says). Each test says which lane answered: the inline one, or the gateway's full
path (`Gateway.handle`), which a spy on it counts."""

from __future__ import annotations

import asyncio
import contextlib

import orjson
import uvicorn
import uvloop

from modelfleet.schema.deployment_settings import RequestSettings
from modelfleet.server.dataplane import inline
from modelfleet.server.dataplane.connections import Limits, guarded_protocol
from modelfleet.server.dataplane.gateway import Gateway
from modelfleet.server.dataplane.routing import DeploymentSnapshot, EndpointSnapshot, Router, RoutingTable
from modelfleet.server.dataplane.wire import wire_protocol
from modelfleet.server.telemetry.access_log import AccessLog
from modelfleet.server.telemetry.hooks import Telemetry
from modelfleet.server.telemetry.metrics import Metrics

from tests.fakes import until
from tests.unit.server.dataplane.test_wire import KEY, EchoReplica, Front, connect, post, response

BODY = b'{"data": [[1, 2, 3, 4]]}'


class Served:
    def __init__(self, gateway: Gateway, replicas: list[EchoReplica], port: int):
        self.gateway, self.replicas, self.port = gateway, replicas, port
        self.full_path: list[str] = []   # requests Gateway.handle answered
        handle = gateway.handle

        def spy(ex):
            self.full_path.append(ex.path)
            return handle(ex)
        gateway.handle = spy

    @property
    def access(self) -> list[tuple]:
        return list(self.gateway.telemetry.access_log.recent)


@contextlib.asynccontextmanager
async def serving(replicas: int = 1, timeout_ms: int = 5000, capacity: int = 16):
    reps = [EchoReplica() for _ in range(replicas)]
    for i, r in enumerate(reps):
        r.id = f"blue-{i + 1}"
    router = Router()
    dep = DeploymentSnapshot("ep", "blue", "k", RequestSettings(request_timeout_ms=timeout_ms, max_body_bytes=1000), tuple(reps),
                             router.admission("ep", "blue"), {}, ((b"azureml-model-deployment", b"blue"),))
    router.publish(RoutingTable({"ep": EndpointSnapshot.build("ep", "key", (KEY,), {"blue": 100}, {},
                                                              {"blue": dep})}, ready=True))
    dep.admission.resize(capacity, 64)   # after publish, which sizes it by the settings
    gateway = Gateway(router, Telemetry(Metrics(), AccessLog(None)))
    front = Front(gateway)
    protocol = guarded_protocol(Limits(30.0, 10.0, 100), wire_protocol(front))
    config = uvicorn.Config(front, host="127.0.0.1", port=0, http=protocol, lifespan="off", log_level="warning",
                            access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve())
    await until(lambda: server.started or task.done())
    try:
        yield Served(gateway, reps, server.servers[0].sockets[0].getsockname()[1])
    finally:
        server.should_exit = True
        await task


def run(scenario, **kwargs):
    async def main():
        async with serving(**kwargs) as served:
            await asyncio.wait_for(scenario(served), 20)
    uvloop.run(main())


def _comparable(headers: dict) -> dict:
    return {k: v for k, v in headers.items() if k not in ("x-request-id", "date")}


def test_the_inline_lane_answers_as_the_full_path_does_and_is_recorded_alike():
    async def scenario(s: Served):
        reader, writer = await connect(s.port)
        answers = {}
        for name, extra in (("inline", ""), ("full", "expect: 100-continue\r\n")):   # 100-continue: the full path
            for path in ("/endpoints/ep/score", "/v2/models/ep/infer", "/v2/models/ep/versions/blue/infer"):
                writer.write(post(BODY, path, extra))
                status, headers, body = await response(reader)
                answers[name, path] = (status, _comparable(headers), body)
        writer.close()
        assert s.full_path == ["/endpoints/ep/score", "/v2/models/ep/infer", "/v2/models/ep/versions/blue/infer"]
        for path in ("/endpoints/ep/score", "/v2/models/ep/infer", "/v2/models/ep/versions/blue/infer"):
            assert answers["inline", path] == answers["full", path], path
            assert answers["inline", path] == (200, answers["inline", path][1], BODY)
        rows = s.access
        assert len(rows) == 6
        # (time, id, endpoint, deployment, replica, method, path, status, ...): the same but for time and id
        assert [r[2:8] for r in rows[:3]] == [r[2:8] for r in rows[3:]]
        assert {r[2:5] + (r[7],) for r in rows} == {("ep", "blue", "blue-1", 200)}
        assert len({r[1] for r in rows}) == 6   # each its own request id
    run(scenario)


def test_requests_the_inline_lane_declines_are_answered_by_the_full_path():
    async def scenario(s: Served):
        reader, writer = await connect(s.port)
        cases = [
            (post(BODY, "/endpoints/nope/score"), 404),                                    # unknown endpoint
            (post(BODY).replace(b"Bearer " + KEY.encode(), b"Bearer wrong"), 401),          # bad key
            (post(BODY, extra="azureml-model-deployment: green\r\n"), 404),                # unknown deployment
            (post(b"x" * 2000), 413),                                                       # over max_body_bytes
            (b"GET /v2/models/ep HTTP/1.1\r\nhost: x\r\nauthorization: Bearer secret\r\n\r\n", 200),   # not an infer
        ]
        for raw, expected in cases:
            writer.write(raw)
            status, _, _ = await response(reader)
            assert status == expected, raw[:60]
            if status in (413, 401):   # an early answer closes the connection
                writer.close()
                reader, writer = await connect(s.port)
        writer.close()
        assert len(s.full_path) == len(cases)
    run(scenario)


async def held_by_the_first_replica(s: Served):
    """(reader, writer) of a connection whose request the first replica holds, sent inline."""
    s.replicas[0].hold = True
    reader, writer = await connect(s.port)
    writer.write(post(BODY))
    await until(lambda: s.replicas[0].bodies)
    assert s.full_path == []
    return reader, writer


def test_an_inline_request_whose_replica_goes_away_is_retried_on_another():
    async def scenario(s: Served):
        first, second = s.replicas
        reader, writer = await held_by_the_first_replica(s)
        first.die()
        status, _, body = await response(reader)
        assert (status, body) == (200, BODY)
        assert second.bodies == [BODY]
        writer.close()
    run(scenario, replicas=2)


def test_an_inline_request_past_its_deadline_is_a_408_and_its_replica_counts_it_late():
    async def scenario(s: Served):
        (replica,) = s.replicas
        replica.hold = True
        reader, writer = await connect(s.port)
        writer.write(post(BODY))
        status, _, body = await response(reader)
        assert status == 408
        assert orjson.loads(body)["error"] == {"code": "timeout", "message": "request timed out after 50 ms"}
        assert replica.late == 1 and s.access[-1][7] == 408
        writer.close()
    run(scenario, timeout_ms=50)


def test_a_replica_killed_for_a_call_that_outlived_the_deadline_does_not_get_the_request_retried(monkeypatch):
    """The supervisor may kill a replica for a stuck call before the sweep notices that call's
    request is past its deadline: the request timed out, and a request that timed out is never
    retried (its model call could hang the next replica too)."""
    monkeypatch.setattr(inline, "SWEEP_S", 3600.0)   # the sweep is not what answers here

    async def scenario(s: Served):
        first, second = s.replicas
        reader, writer = await held_by_the_first_replica(s)
        (call,) = s.gateway.inline.inflight
        loop = asyncio.get_running_loop()
        await until(lambda: loop.time() >= call.deadline)
        first.die()
        status, _, _ = await response(reader)
        assert status == 408 and second.bodies == []
        writer.close()
    run(scenario, replicas=2, timeout_ms=20)


def test_a_request_that_finds_every_slot_taken_queues_on_the_full_path_and_is_answered_in_turn():
    async def scenario(s: Served):
        (replica,) = s.replicas
        replica.hold = True
        one = await connect(s.port)
        two = await connect(s.port)
        one[1].write(post(b'{"n": 1}'))
        await until(lambda: replica.bodies)
        two[1].write(post(b'{"n": 2}'))
        await until(lambda: s.full_path)   # no free slot: the full path queues it
        replica.hold = False
        replica.answer_all(b'{"n": 1}')
        assert (await response(one[0]))[2] == b'{"n": 1}'
        assert (await response(two[0]))[2] == b'{"n": 2}'
        for _, writer in (one, two):
            writer.close()
    run(scenario, capacity=1)
