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
import psutil

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


def groups_of(fleet, names: list[str]) -> dict[str, list[int]]:
    """The gateway's process and the replicas of `names`: CPU per request is reported for each."""
    reps = []
    for name in names:
        reps += [r["pid"] for r in fleet.online_deployments.get("blue", name)["replicas"]]
    return {"gateway": [fleet.server.status()["pid"]], "replicas": reps}


def run_case(args, label: str, base: str, targets: list, groups: dict) -> list[dict]:
    print(f"  {label}", flush=True)
    pids = [p.pid for p in c.tree(groups["gateway"][0])]   # the server, the zygote, every replica
    return [{"case": label, **c.measure(base, targets, n, args.duration, args.warmup, pids, groups)}
            for n in args.connections]


def routing_lookup(counts=(1, 10, 100, 1000, 10000), lookups: int = 200_000) -> list[dict]:
    """In process: the gateway's per-request routing work (endpoint lookup, key check, choice of
    deployment) against routing tables of growing size, on the gateway's own classes."""
    import random
    from modelfleet.schema.deployment_settings import RequestSettings
    from modelfleet.server.dataplane.admission import Admission
    from modelfleet.server.dataplane.gateway import Gateway
    from modelfleet.server.dataplane.routing import DeploymentSnapshot, EndpointSnapshot
    key = b"k" * 43
    header = b"Bearer " + key
    out = []
    for n in counts:
        routes = {}
        for i in range(n):
            name = f"ep-{i:05d}"
            blue = DeploymentSnapshot(name, "blue", "k", RequestSettings(), (), Admission(16, 512))
            routes[name] = EndpointSnapshot.build(name, "key", (key.decode(), "s" * 43), {"blue": 100}, {},
                                                  {"blue": blue})
        names = [random.choice(list(routes)) for _ in range(1000)] * (lookups // 1000)
        t = time.perf_counter()
        for name in names:
            ep = routes.get(name)
            Gateway._authorized(ep, header)
            ep.choose()
        out.append({"endpoints": n, "ns_per_request": round(1e9 * (time.perf_counter() - t) / len(names), 1)})
    return out


def memory_of(pids: list[int], replicas: list[int]) -> dict:
    """RSS double-counts the pages replicas share with the zygote they fork from; PSS splits them."""
    rss = pss = 0.0
    per = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            m = psutil.Process(pid).memory_full_info()
            rss, pss = rss + m.rss, pss + m.pss
            if pid in replicas:
                per.append(m.pss)
    return {"rss_mb": round(rss / 2**20, 1), "pss_mb": round(pss / 2**20, 1),
            "pss_per_replica_mb": round(sum(per) / max(1, len(per)) / 2**20, 1), "processes": len(pids)}


def report(res: dict, args) -> str:
    m = res["machine"]
    rows = []
    base = {r["connections"]: r for r in res["runs"] if r["case"] == res["runs"][0]["case"]}
    for r in res["runs"]:
        b = base[r["connections"]]
        rows.append({**r, "rps_ratio": round(r["rps"] / b["rps"], 2) if b["rps"] else None,
                     "p50_added": r["p50_ms"] - b["p50_ms"],
                     **{k: r["cpu_us_per_request"].get(k)
                        for k in ("gateway", "gateway_sys", "replicas", "replicas_sys")}})
    table = c.table(rows, [("case", "case"), ("connections", "conns"), ("rps", "req/s"), ("p50_ms", "p50 ms"),
                           ("p99_ms", "p99 ms"), ("errors", "errors"), ("rps_ratio", "req/s vs 1 endpoint"),
                           ("p50_added", "p50 added ms"), ("gateway", "gateway CPU µs/req"),
                           ("gateway_sys", "of which kernel"), ("replicas", "replicas CPU µs/req"),
                           ("replicas_sys", "of which kernel"), ("foreign_cpu_pct", "other work % CPU")])
    return (f"# Many endpoints\n\n{m['nproc']} cores, {m['cpu_model']}, Python {m['python']}; load: "
            f"{m['load_generator']}, {args.duration:.0f} s per run. {res['endpoints']} endpoints started in "
            f"{res['deploy_s']:.1f} s. Memory of the server, zygote and all {res['endpoints']} replicas: "
            f"{res['memory']['rss_mb']:.0f} MiB RSS summed, {res['memory']['pss_mb']:.0f} MiB PSS "
            f"({res['memory']['pss_per_replica_mb']:.0f} MiB PSS per replica)."
            f"\n\n{table}\n\nThe gateway's routing work per request (endpoint lookup, key check, deployment "
            f"choice), timed in process on its own classes:\n\n"
            + c.table(res["routing"], [("endpoints", "endpoints in the routing table"),
                                       ("ns_per_request", "ns per request")]) + "\n")


def main(argv=None) -> int:
    args = parse_args(argv)
    removed = c.scrub_blas_overrides()
    res = {"machine": c.machine(removed), "started_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
           "endpoints": args.endpoints, "runs": []}
    names = [f"ep-{i:02d}" for i in range(args.endpoints)]
    res["routing"] = routing_lookup()
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
            res["runs"] += run_case(args, "1 endpoint on the server", base, [first], groups_of(fleet, names[:1]))
            res["deploy_s"] = deploy(fleet, names[1:])
            pids = [p.pid for p in c.tree(fleet.server.status()["pid"])]
            res["memory"] = memory_of(pids, groups_of(fleet, names)["replicas"])
            res["runs"] += run_case(args, f"{args.endpoints} endpoints, load on 1", base, [first],
                                    groups_of(fleet, names[:1]))
            targets = [target(fleet, n)[1] for n in names]
            res["runs"] += run_case(args, f"{args.endpoints} endpoints, load on all", base, targets,
                                    groups_of(fleet, names))
        finally:
            c.stop_fleet(fleet)
    md = report(res, args)
    c.publish("many_endpoints", res, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
