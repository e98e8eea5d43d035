"""The server's HTTP protocol (dataplane/wire.py) over a real socket on 127.0.0.1: uvicorn with
the protocol the server runs, a real gateway, and a fake replica that echoes the body it gets."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest
import uvicorn
import uvloop

from modelfleet.backends.base import ReplicaSpec, RequestKind
from modelfleet.schema.deployment_settings import Batching, RequestSettings, Resources
from modelfleet.server.dataplane.connections import Limits, guarded_protocol
from modelfleet.server.dataplane.gateway import Gateway
from modelfleet.server.dataplane.routing import DeploymentSnapshot, EndpointSnapshot, Router, RoutingTable
from modelfleet.server.dataplane.wire import is_scoring, wire_protocol

from tests.fakes import FakeReplica, until

KEY = "secret"
AUTH = f"authorization: Bearer {KEY}\r\n"
MAX_BODY = 1000


class EchoReplica(FakeReplica):
    """Answers each request with its body (V2: framed as a replica frames it), unless held."""

    def __init__(self):
        spec = ReplicaSpec("ep", "blue", "blue-1", "k", "sklearn", None, "0" * 64, None, None, None, {},
                           Batching(), Resources(), None)
        super().__init__(spec, 1)
        self.hold = False
        self.bodies: list[bytes] = []

    def send(self, model, kind, body, header_length=0, request_id=""):
        fut = super().send(model, kind, body, header_length, request_id)
        self.bodies.append(body)
        if not self.hold:
            framed = len(body).to_bytes(4, "big") + body if kind == RequestKind.V2_INFER else body
            self.answer_all(framed)
        return fut


class Front:
    """What process.py gives the protocol: the gateway, the draining flag, and the ASGI app that
    answers every other path (here: a stand-in for the control API)."""

    def __init__(self, gateway: Gateway):
        self.gateway = gateway
        self.draining = False
        self.asgi_paths: list[str] = []

    def scoring(self, path: str):
        """As server/app.py's: a workspace's prefix (here: /workspaces/w) taken off."""
        if path.startswith("/workspaces/w/"):
            path = path[len("/workspaces/w"):]
        return (self.gateway, path) if is_scoring(path) else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        assert not is_scoring(scope["path"])
        self.asgi_paths.append(scope["path"])
        body = b"control " + scope["path"].encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


@contextlib.asynccontextmanager
async def serving(max_body: int, idle_timeout_s: float):
    """(front, replica, port) of a server on a free port of 127.0.0.1."""
    replica = EchoReplica()
    router = Router()
    dep = DeploymentSnapshot("ep", "blue", "k", RequestSettings(max_body_bytes=max_body), (replica,),
                             router.admission("ep", "blue"), {}, ((b"azureml-model-deployment", b"blue"),))
    dep.admission.resize(16, 64)
    router.publish(RoutingTable({"ep": EndpointSnapshot.build("ep", "key", (KEY,), {"blue": 100}, {},
                                                              {"blue": dep})}, ready=True))
    front = Front(Gateway(router))
    protocol = guarded_protocol(Limits(idle_timeout_s, 10.0, 100), wire_protocol(front))
    config = uvicorn.Config(front, host="127.0.0.1", port=0, http=protocol, lifespan="off", log_level="warning",
                            access_log=False)
    server = uvicorn.Server(config)
    front.server = server
    task = asyncio.ensure_future(server.serve())
    await until(lambda: server.started or task.done())
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield front, replica, port
    finally:
        server.should_exit = True
        await task


def run(scenario, max_body: int = MAX_BODY, idle_timeout_s: float = 30.0):
    async def main():
        async with serving(max_body, idle_timeout_s) as (front, replica, port):
            await asyncio.wait_for(scenario(front, replica, port), 20)
    uvloop.run(main())


async def connect(port: int):
    return await asyncio.open_connection("127.0.0.1", port)


def head(extra: str = "", path: str = "/endpoints/ep/score", version: str = "1.1") -> bytes:
    """A scoring request's line and headers (with the key), `extra` header lines added."""
    return f"POST {path} HTTP/{version}\r\nhost: x\r\n{AUTH}{extra}\r\n".encode()


def post(body: bytes, path: str = "/endpoints/ep/score", extra: str = "", version: str = "1.1") -> bytes:
    return head(f"content-length: {len(body)}\r\n{extra}", path, version) + body


def chunk(part: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(part), part)


CHUNKED = "transfer-encoding: chunked\r\n"


async def response(reader: asyncio.StreamReader) -> tuple[int, dict, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", 0)))
    return status, headers, body


async def closed(reader: asyncio.StreamReader) -> bool:
    return await reader.read() == b""


def test_keep_alive_answers_many_requests_on_one_connection():
    async def scenario(front, replica, port):
        reader, writer = await connect(port)
        ids = set()
        for n in range(3):
            writer.write(post(b'{"data": [%d]}' % n))
            status, headers, body = await response(reader)
            assert (status, body) == (200, b'{"data": [%d]}' % n)
            assert headers["content-type"] == "application/json"
            assert headers["azureml-model-deployment"] == "blue"
            assert "date" in headers and "connection" not in headers
            ids.add(headers["x-request-id"])
        assert len(ids) == 3
        writer.close()
    run(scenario)


def test_pipelined_requests_are_answered_in_order_across_both_paths():
    async def scenario(front, replica, port):
        reader, writer = await connect(port)
        writer.write(post(b"[1]") + b"GET /api/ping HTTP/1.1\r\nhost: x\r\n\r\n" + post(b"[2]")
                     + post(b"[3]", "/v2/models/ep/infer"))
        answers = [await response(reader) for _ in range(4)]
        assert [(s, b) for s, _, b in answers] == [(200, b"[1]"), (200, b"control /api/ping"), (200, b"[2]"),
                                                    (200, b"[3]")]
        assert front.asgi_paths == ["/api/ping"]
        writer.close()
    run(scenario)


def test_a_chunked_body_reaches_the_replica_whole():
    async def scenario(front, replica, port):
        reader, writer = await connect(port)
        writer.write(head(CHUNKED))
        for part in (b'{"data"', b": [[1, 2]", b"]}"):
            writer.write(chunk(part))
            await writer.drain()
            await asyncio.sleep(0)   # separate packets, as a streaming client sends them
        writer.write(b"0\r\n\r\n")
        status, _, body = await response(reader)
        assert (status, body) == (200, b'{"data": [[1, 2]]}')
        assert replica.bodies == [b'{"data": [[1, 2]]}']
        writer.close()
    run(scenario)


def test_expect_100_continue_is_answered_before_the_body_is_sent():
    async def scenario(front, replica, port):
        reader, writer = await connect(port)
        writer.write(head("content-length: 3\r\nexpect: 100-continue\r\n"))
        assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"[7]")
        status, _, body = await response(reader)
        assert (status, body) == (200, b"[7]")
        writer.close()
    run(scenario)


def test_a_client_that_leaves_mid_body_sends_nothing_to_the_replica():
    async def scenario(front, replica, port):
        reader, writer = await connect(port)
        writer.write(head("content-length: 100\r\n") + b"[1,")
        await writer.drain()
        writer.close()
        reader, writer = await connect(port)   # the server goes on
        writer.write(post(b"[2]"))
        assert (await response(reader))[2] == b"[2]"
        assert replica.bodies == [b"[2]"]
        writer.close()
    run(scenario)


@pytest.mark.parametrize("pipelined", [1, 2])
def test_a_client_that_leaves_while_its_model_call_runs_leaves_no_error(pipelined, caplog):
    async def scenario(front, replica, port):
        replica.hold = True
        reader, writer = await connect(port)
        writer.write(b"".join(post(b"[%d]" % n) for n in range(pipelined)))
        await until(lambda: replica.bodies)
        writer.close()
        await until(lambda: not front.server.server_state.connections)
        replica.answer_all(b"[late]")   # the first request's answer has nowhere to go
        replica.hold = False
        reader, writer = await connect(port)
        writer.write(post(b"[9]"))
        assert (await response(reader))[2] == b"[9]"
        writer.close()
    run(scenario)
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_an_oversized_body_gets_413_and_the_connection_closes():
    async def scenario(front, replica, port):
        reader, writer = await connect(port)   # announced by its length: refused before it is read
        writer.write(head(f"content-length: {MAX_BODY + 1}\r\n"))
        status, headers, body = await response(reader)
        assert status == 413 and b"larger than 1000 bytes" in body and headers["connection"] == "close"
        assert await closed(reader)
        reader, writer = await connect(port)   # chunked: refused once it grows past the limit
        writer.write(head(CHUNKED) + chunk(b"x" * 600) * 2)
        status, _, body = await response(reader)
        assert status == 413 and b"payload_too_large" in body
        assert await closed(reader)
        assert replica.bodies == []
        writer.close()
    run(scenario)


@pytest.mark.parametrize("why", ["HTTP/1.0", "a draining server"])
def test_the_connection_closes_after_its_answer_on(why):
    async def scenario(front, replica, port):
        reader, writer = await connect(port)
        front.draining = why == "a draining server"
        writer.write(post(b"[1]", version="1.0" if why == "HTTP/1.0" else "1.1"))
        status, headers, body = await response(reader)
        assert (status, body, headers["connection"]) == (200, b"[1]", "close")
        assert await closed(reader)
    run(scenario)


def test_errors_and_other_paths():
    async def scenario(front, replica, port):
        reader, writer = await connect(port)
        writer.write(b"POST /endpoints/ep/score HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\n[1]")
        status, headers, body = await response(reader)
        assert status == 401 and b"Bearer" in body and "x-request-id" in headers
        writer.write(b"GET /endpoints/ep/score HTTP/1.1\r\nhost: x\r\n\r\n")
        status, headers, _ = await response(reader)
        assert (status, headers["allow"]) == (405, "POST")
        writer.write(b"GET /v2/health/live HTTP/1.1\r\nhost: x\r\n\r\n")
        assert (await response(reader))[::2] == (200, b'{"live":true}')
        writer.write(b"GET /endpoint%73/ep/score?x=1 HTTP/1.1\r\nhost: x\r\n\r\n")   # decoded as uvicorn does
        assert (await response(reader))[0] == 405
        writer.write(b"GET /endpointsX HTTP/1.1\r\nhost: x\r\n\r\n")
        assert (await response(reader))[::2] == (200, b"control /endpointsX")
        writer.write(post(b"[9]", "/workspaces/w/endpoints/ep/score"))   # under a workspace's prefix
        assert (await response(reader))[::2] == (200, b"[9]")
        writer.write(b"GET /workspaces/w/api/x HTTP/1.1\r\nhost: x\r\n\r\n")
        assert (await response(reader))[::2] == (200, b"control /workspaces/w/api/x")
        writer.close()
    run(scenario)


def test_pipelined_answers_larger_than_the_socket_buffers_arrive_whole_and_in_order():
    async def scenario(front, replica, port):
        reader, writer = await connect(port)
        body = b'"' + b"x" * (2 << 20) + b'"'
        writer.write(post(body + b"1") + post(body + b"2") + post(body + b"3"))   # each answer waits for
        for n in b"123":                                                      # room in the server's buffer
            status, _, answer = await response(reader)
            assert (status, answer) == (200, body + bytes([n]))
        writer.close()
    run(scenario, max_body=4 << 20)


def test_a_connection_idle_after_its_answers_is_closed_and_a_busy_one_is_not():
    async def scenario(front, replica, port):
        reader, writer = await connect(port)
        for n in range(4):   # each request comes before the idle timeout, counted from the answer before,
            writer.write(post(b"[%d]" % n))   # and the last after the timeout counted from the first answer
            assert (await response(reader))[2] == b"[%d]" % n
            await asyncio.sleep(0.9)   # idle (the scenario's input, not a wait), for less than the timeout
        assert await closed(reader)   # then nothing more: the server closes it
    run(scenario, idle_timeout_s=2.0)


def test_a_body_still_arriving_after_an_early_answer_is_not_counted_as_headers():
    """The control API may answer before reading a body (an upload refused at once): the rest of
    that body is not a request line or headers, so it never trips the header cap (64 KiB), and
    the connection's next request gets its own answer, not a stray 400."""
    async def scenario(front, replica, port):
        reader, writer = await connect(port)
        body = b"x" * (300 << 10)
        writer.write(b"PUT /api/artifacts/x HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n" % len(body)
                     + body[:1000])
        assert (await response(reader))[::2] == (200, b"control /api/artifacts/x")
        writer.write(body[1000:])
        await writer.drain()
        writer.write(b"GET /api/next HTTP/1.1\r\nhost: x\r\n\r\n")
        assert (await response(reader))[::2] == (200, b"control /api/next")
        writer.close()
    run(scenario)


@pytest.mark.parametrize("path", ["/endpoints/ep/score", "/api/x"])
def test_a_request_head_past_the_cap_gets_400(path):
    async def scenario(front, replica, port):
        reader, writer = await connect(port)
        filler = b"".join(b"x-filler-%d: %s\r\n" % (n, b"y" * 1024) for n in range(80))
        writer.write(f"GET {path} HTTP/1.1\r\nhost: x\r\n".encode() + filler)   # 80 KiB of head, never ended
        assert (await response(reader))[::2] == (400, b"Request headers too large.")
        assert await closed(reader)
    run(scenario)
