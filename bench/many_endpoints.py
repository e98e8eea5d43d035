"""Many endpoints: does the cost of a request grow with the number of endpoints on one server?

One workspace server, the same iris model behind every endpoint (one deployment, one replica
each). Measured with the same wrk load:

  1. one endpoint on the server, all load on it;
  2. after creating the others (10 endpoints in all): all load on the first one;
  3. load spread round robin over all 10 endpoints (each request with its endpoint's key).

    .venv/bin/python bench/many_endpoints.py [--endpoints 10] [--duration 10]

Writes bench/results/many_endpoints.json and many_endpoints.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as c  # noqa: E402

BODY = orjson.dumps({"data": [c.IRIS_ROW]})


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--endpoints", type=int, default=10)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--connections", default="1,16", help="connection counts to run at")
    args = ap.parse_args(argv)
    args.connections = [int(x) for x in args.connections.split(",") if x]
    return args


def target(fleet, endpoint: str) -> tuple[str, tuple[str, bytes, dict]]:
    ep = fleet.online_endpoints.get(endpoint)
    key = fleet.online_endpoints.get_keys(endpoint)["primaryKey"]
    base, path = re.match(r"(http://[^/]+)(/.*)", ep["scoring_uri"]).groups()
    return base, (path, BODY, {"Content-Type": "application/json", "Authorization": f"Bearer {key}"})


def deploy(fleet, names: list[str]) -> float:
    """Create the endpoints and their deployments, start all replicas at once, wait for each."""
    t = time.perf_counter()
    for name in names:
        fleet.online_endpoints.create(name)
        fleet.online_deployments.create("blue", name, "iris:1", all_traffic=True, wait=False)
    for name in names:
        fleet.online_deployments.wait(name, "blue")
    return time.perf_counter() - t


def pids_of(fleet, names: list[str]) -> list[int]:
    pids = [fleet.server.status()["pid"]]
    for name in names:
        pids += [r["pid"] for r in fleet.online_deployments.get("blue", name)["replicas"]]
    return pids


def run_case(args, label: str, base: str, targets: list, pids: list[int]) -> list[dict]:
    print(f"  {label}", flush=True)
    return [{"case": label, **c.measure(base, targets, n, args.duration, args.warmup, pids)} for n in args.connections]


def report(res: dict, args) -> str:
    m = res["machine"]
    rows = []
    base = {r["connections"]: r for r in res["runs"] if r["case"] == res["runs"][0]["case"]}
    for r in res["runs"]:
        b = base[r["connections"]]
        rows.append({**r, "rps_ratio": round(r["rps"] / b["rps"], 2) if b["rps"] else None,
                     "p50_added": r["p50_ms"] - b["p50_ms"]})
    table = c.table(rows, [("case", "case"), ("connections", "conns"), ("rps", "req/s"), ("p50_ms", "p50 ms"),
                           ("p99_ms", "p99 ms"), ("errors", "errors"), ("rps_ratio", "req/s vs 1 endpoint"),
                           ("p50_added", "p50 added ms"), ("foreign_cpu_pct", "other work % CPU")])
    return (f"# Many endpoints\n\n{m['nproc']} cores, {m['cpu_model']}, Python {m['python']}; load: "
            f"{m['load_generator']}, {args.duration:.0f} s per run. {res['endpoints']} endpoints started in "
            f"{res['deploy_s']:.1f} s; RSS of the server and all {res['endpoints']} replicas: {res['rss_mb']:.0f} MiB."
            f"\n\n{table}\n")


def main(argv=None) -> int:
    args = parse_args(argv)
    removed = c.scrub_blas_overrides()
    res = {"machine": c.machine(removed), "endpoints": args.endpoints, "runs": []}
    names = [f"ep-{i:02d}" for i in range(args.endpoints)]
    with tempfile.TemporaryDirectory(prefix="modelfleet-bench-many-") as tmp:
        work = Path(tmp)
        for k in ("FLEET_WORKSPACE", "FLEET_DATABASE_URL"):
            os.environ.pop(k, None)
        os.environ["FLEET_HOME"] = str(work / "home")
        from modelfleet import Fleet
        fleet = Fleet()
        pids: list[int] = []
        try:
            fleet.models.register("iris", c.train_iris(work / "iris").parent, "1")
            deploy(fleet, names[:1])
            base, first = target(fleet, names[0])
            pids = pids_of(fleet, names[:1])
            res["runs"] += run_case(args, "1 endpoint on the server", base, [first], pids)
            res["deploy_s"] = deploy(fleet, names[1:])
            pids = pids_of(fleet, names)
            res["rss_mb"] = c.rss_mb(pids)
            res["runs"] += run_case(args, f"{args.endpoints} endpoints, load on 1", base, [first], pids)
            targets = [target(fleet, n)[1] for n in names]
            res["runs"] += run_case(args, f"{args.endpoints} endpoints, load on all", base, targets, pids)
        finally:
            with contextlib.suppress(Exception):
                fleet.server.stop()
            c.stop_pids(pids, 5.0)
            fleet.close()
    md = report(res, args)
    path = c.write_result("many_endpoints", res, md)
    print("\n" + md)
    print(f"wrote {path} and many_endpoints.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
