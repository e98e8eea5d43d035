"""What the metrics, live figures and access log cost the gateway's hot path.

The gateway runs in this process with an in-memory replica that answers at once, so what is
timed is the gateway alone (routing, admission, the request hook), not sockets or a model.
The same requests go through it with telemetry off and on (metrics + windows + access log
to a file), alternating rounds; then the hook alone is timed.

    .venv/bin/python bench/telemetry.py             # about 30 seconds

Writes bench/results/telemetry.json and bench/results/telemetry.md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as c  # noqa: E402

from modelfleet.backends.base import ReplyStatus  # noqa: E402
from modelfleet.server.telemetry.access_log import AccessLog  # noqa: E402
from modelfleet.server.dataplane.admission import Admission  # noqa: E402
from modelfleet.server.dataplane.gateway import Gateway  # noqa: E402
from modelfleet.server.telemetry.metrics import Metrics  # noqa: E402
from modelfleet.server.dataplane.routing import DeploymentSnapshot, EndpointSnapshot, Router, RoutingTable  # noqa: E402
from modelfleet.server.telemetry.hooks import RequestTrace, Telemetry  # noqa: E402
from modelfleet.schema.deployment_settings import RequestSettings

BODY = b'{"data": [[5.1, 3.5, 1.4, 0.2]]}'
ANSWER = b"[0]"


class InstantReplica:
    """A ReplicaHandle whose answer is ready the moment the request is sent."""
    id = "bench-1"
    models = frozenset({"k"})
    info: dict = {}
    on_batch = None
    inflight = 0
    closed = False
    responsive = True
    late = 0
    overdue_at = float("inf")

    def send(self, model, kind, body, header_length=0, request_id=""):
        fut = asyncio.get_running_loop().create_future()
        fut.set_result((ReplyStatus.OK, ANSWER))
        return fut


def router() -> Router:
    dep = DeploymentSnapshot("ep", "blue", "k", RequestSettings(), (InstantReplica(),), Admission(16, 512),
                             {}, ((b"azureml-model-deployment", b"blue"),))
    r = Router()
    r.publish(RoutingTable({"ep": EndpointSnapshot.build("ep", "key", ("secret", "other"), {"blue": 100}, {},
                                                          {"blue": dep})}, ready=True))
    return r


async def run(gateway: Gateway, n: int) -> float:
    """Seconds of CPU per request through the gateway's ASGI entry point."""
    scope = {"type": "http", "method": "POST", "path": "/endpoints/ep/score", "client": ("127.0.0.1", 5000),
             "headers": [(b"authorization", b"Bearer secret"), (b"content-length", str(len(BODY)).encode())]}
    message = {"type": "http.request", "body": BODY, "more_body": False}

    async def receive():
        return message

    async def send(_msg):
        pass
    start = time.process_time()
    for _ in range(n):
        await gateway(dict(scope), receive, send)
    return (time.process_time() - start) / n


def arguments(doc: str, argv=None) -> argparse.Namespace:
    """--requests and --rounds (this script's and bench/wire.py's)."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=20000, help="requests per round")
    ap.add_argument("--rounds", type=int, default=7)
    return ap.parse_args(argv)


def access_log() -> AccessLog:
    """An access log written to a new temporary folder, as a server writes its own."""
    return AccessLog(Path(tempfile.mkdtemp(prefix="modelfleet-bench-")) / "access.log")


def main(argv=None) -> None:
    args = arguments(__doc__, argv)
    access = access_log()
    telemetry = Telemetry(Metrics(), access)
    off, on = Gateway(router()), Gateway(router(), telemetry)
    results = {"off": [], "on": []}

    async def rounds():
        await run(off, 2000)
        await run(on, 2000)
        for _ in range(args.rounds):
            results["off"].append(await run(off, args.requests))
            results["on"].append(await run(on, args.requests))
    asyncio.run(rounds())

    trace = RequestTrace(time.perf_counter())
    trace.endpoint, trace.deployment, trace.replica, trace.status = "ep", "blue", "bench-1", 200
    scope = {"method": "POST", "path": "/endpoints/ep/score", "client": ("127.0.0.1", 5000)}
    n = 100_000
    start = time.process_time()
    for _ in range(n):
        telemetry.request_done(trace, "rid", "POST", "/endpoints/ep/score", ("127.0.0.1", 5000))
    hook = (time.process_time() - start) / n
    scrape_start = time.perf_counter()
    body, _ = telemetry.metrics.exposition()
    scrape = time.perf_counter() - scrape_start
    access.close()

    off_us = statistics.median(results["off"]) * 1e6
    on_us = statistics.median(results["on"]) * 1e6
    data = {"gateway_cpu_us_off": off_us, "gateway_cpu_us_on": on_us, "added_us": on_us - off_us,
            "added_pct": 100 * (on_us - off_us) / off_us, "hook_us": hook * 1e6, "scrape_ms": scrape * 1000,
            "scrape_bytes": len(body), "rounds": results}
    md = "\n".join([
        "| gateway CPU per request, telemetry off | on | added | hook alone (metrics + windows + access log) | one scrape |",
        "|---|---|---|---|---|",
        f"| {off_us:.1f} µs | {on_us:.1f} µs | {on_us - off_us:.1f} µs ({data['added_pct']:.1f} %) | "
        f"{hook * 1e6:.1f} µs | {scrape * 1000:.2f} ms ({len(body)} bytes) |"])
    c.publish("telemetry", data, md)


if __name__ == "__main__":
    main()
