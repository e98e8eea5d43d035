"""What the server's HTTP layer costs per data-plane request, in process: uvicorn's ASGI path
against the server's own protocol (server/dataplane/wire.py).

The same bytes of one keep-alive HTTP/1.1 request go into a protocol over an in-memory transport
(no socket), with the gateway of bench/telemetry.py behind it (an in-memory replica that answers
at once), until the answer is written; and straight into the gateway's ASGI entry, with no HTTP
at all. On uvloop, as the server runs. Through the server's protocol, such a request takes the
gateway's inline lane (server/dataplane/inline.py); the ASGI entry is the gateway's full path.
Telemetry off and on (metrics + windows + access log to a file), alternating rounds. CPU
time per request, median of the rounds:

    .venv/bin/python bench/wire.py              # about a minute

Writes bench/results/wire.json and bench/results/wire.md.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as c  # noqa: E402
import telemetry as t  # noqa: E402

import uvicorn  # noqa: E402
import uvloop  # noqa: E402
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol  # noqa: E402
from uvicorn.server import ServerState  # noqa: E402

from modelfleet.server.dataplane.connections import Limits, guarded_protocol  # noqa: E402
from modelfleet.server.dataplane.gateway import Gateway  # noqa: E402
from modelfleet.server.dataplane.wire import is_scoring, wire_protocol  # noqa: E402
from modelfleet.server.telemetry.hooks import Telemetry  # noqa: E402
from modelfleet.server.telemetry.metrics import Metrics  # noqa: E402

REQUEST = (b"POST /endpoints/ep/score HTTP/1.1\r\nhost: 127.0.0.1:5000\r\nuser-agent: wrk\r\n"
           b"authorization: Bearer secret\r\ncontent-type: application/json\r\n"
           b"content-length: %d\r\n\r\n%s" % (len(t.BODY), t.BODY))


class MemoryTransport:
    """Enough of an asyncio transport for uvicorn's protocol; each write completes a waiter."""

    def __init__(self):
        self.waiter = None
        self.written = 0

    def write(self, data: bytes) -> None:
        self.written += len(data)
        if data.endswith(t.ANSWER) and self.waiter is not None:
            self.waiter.set_result(None)

    def get_extra_info(self, name, default=None):
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 5000)}.get(name, default)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class Front:
    """What the server's ASGI app does before the gateway (server/app.py): split the paths."""

    def __init__(self, gateway: Gateway):
        self.gateway = gateway
        self.draining = False

    def scoring(self, path: str):
        return (self.gateway, path) if is_scoring(path) else None

    async def __call__(self, scope, receive, send):
        if is_scoring(scope["path"]):
            return await self.gateway(scope, receive, send)
        raise AssertionError(f"not a data-plane path: {scope['path']}")


def connection(front: Front, wire: bool):
    limits = Limits(60.0, 10.0, 1000)
    base = wire_protocol(front) if wire else HttpToolsProtocol
    config = uvicorn.Config(front, http="httptools", access_log=False, log_level="warning")
    config.load()
    proto = guarded_protocol(limits, base)(config, ServerState(), {}, asyncio.get_running_loop())
    transport = MemoryTransport()
    proto.connection_made(transport)
    return proto, transport


async def over_http(front: Front, wire: bool, n: int) -> float:
    """CPU seconds per request through a protocol, one keep-alive connection."""
    loop = asyncio.get_running_loop()
    proto, transport = connection(front, wire)
    start = time.process_time()
    for _ in range(n):
        transport.waiter = loop.create_future()
        proto.data_received(REQUEST)
        await transport.waiter
    return (time.process_time() - start) / n


def main(argv=None) -> None:
    args = t.arguments(__doc__, argv)
    access = t.access_log()
    fronts = {"off": Front(Gateway(t.router())), "on": Front(Gateway(t.router(), Telemetry(Metrics(), access)))}
    runs = {f"{entry} {tel}": [] for tel in fronts for entry in ("asgi", "uvicorn", "wire")}

    async def once(name: str, n: int) -> float:
        entry, tel = name.split()
        if entry == "asgi":
            return await t.run(fronts[tel].gateway, n)
        return await over_http(fronts[tel], entry == "wire", n)

    async def rounds():
        for name in runs:
            await once(name, 2000)
        for _ in range(args.rounds):
            for name in runs:
                runs[name].append(await once(name, args.requests))
    uvloop.run(rounds())   # the server's loop
    access.close()

    us = {name: statistics.median(v) * 1e6 for name, v in runs.items()}
    data = {"cpu_us_per_request": us, "rounds": runs}
    md = "\n".join([
        "| telemetry | gateway alone (ASGI entry, no HTTP) | uvicorn's protocol + ASGI + gateway | "
        "wire protocol + gateway (inline lane) | HTTP layer before -> after |",
        "|---|---|---|---|---|",
        *(f"| {tel} | {us['asgi ' + tel]:.1f} µs | {us['uvicorn ' + tel]:.1f} µs | {us['wire ' + tel]:.1f} µs | "
          f"{us['uvicorn ' + tel] - us['asgi ' + tel]:.1f} -> {us['wire ' + tel] - us['asgi ' + tel]:.1f} µs |"
          for tel in ("off", "on"))])
    print(md)
    c.publish("wire", data, md)


if __name__ == "__main__":
    main()
