"""Ray compute: what an endpoint on a Ray cluster costs against local compute and Ray Serve.

One workspace server, the same iris model behind two endpoints with one replica each: one on
local compute (a replica process forked by the server) and one on an owned Ray compute (a Ray
actor on a one-node cluster on 127.0.0.1, which the gateway reaches over one TCP connection).
Measured in one run, one system at a time:

  1. per-request overhead: wrk at 1 connection (p50/p99) and at 16 (req/s), same body, on each,
     in rounds of one local run then one Ray run (so both share whatever else the machine does);
  2. Ray Serve's own HTTP proxy on the same model and load (bench/baselines/ray_app.py in its
     virtualenv, as serving.py runs it), after modelfleet and its cluster are stopped;
  3. deployment create -> ready on an idle machine, and a rolling update to a new model version
     under load, a few runs each, on each compute.

    .venv/bin/python bench/ray_compute.py               # 5-9 minutes (+5 once: Ray Serve's virtualenv)
    .venv/bin/python bench/ray_compute.py --rounds 5 --duration 10
    .venv/bin/python bench/ray_compute.py --no-serve    # without the Ray Serve baseline

Writes bench/results/ray_compute.json and bench/results/ray_compute.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as c  # noqa: E402
import serving  # noqa: E402

COMPUTE = "raybench"
# path -> (endpoint, compute); both serve iris:1 with one replica
PATHS = {"local": ("iris", "local"), "ray": ("iris-ray", COMPUTE)}
LABELS = {"local": "modelfleet, local compute", "ray": "modelfleet, Ray compute",
          "serve": "Ray Serve (its HTTP proxy)"}


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=4.0, help="seconds of measured load per run")
    ap.add_argument("--warmup", type=float, default=1.0, help="seconds of unmeasured load before each run")
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds of (local, Ray) runs at each connection count; medians are reported")
    ap.add_argument("--low", type=int, default=1, help="connections of the latency runs")
    ap.add_argument("--connections", type=int, default=16, help="connections of the throughput runs")
    ap.add_argument("--ready-runs", type=int, default=5, help="deployments created on each compute")
    ap.add_argument("--updates", type=int, default=3, help="rolling updates on each compute")
    ap.add_argument("--update-connections", type=int, default=16, help="load during the updates")
    ap.add_argument("--no-serve", action="store_true", help="skip the Ray Serve baseline")
    ap.add_argument("--install-timeout", type=float, default=900.0,
                    help="seconds allowed to create Ray Serve's virtualenv (first run only)")
    return ap.parse_args(argv)


# -- modelfleet on local and Ray compute ------------------------------------------------------

def cluster_pids(temp_dir: str) -> list[int]:
    from modelfleet.backends.ray import cluster as ray_cluster
    return [p.pid for p in ray_cluster.cluster_processes(temp_dir)]


def niceness(pids: list[int]) -> list[int | None]:
    import psutil
    out = []
    for pid in pids:
        try:
            out.append(psutil.Process(pid).nice())
        except psutil.Error:
            out.append(None)
    return out


def idle_cpu_pct(groups: dict[str, list[int]], seconds: float = 5.0) -> dict[str, float]:
    """CPU each group of processes takes with no request in flight, in % of one core."""
    c.wait_quiet()
    start = {k: c.cpu_seconds(v) for k, v in groups.items()}
    time.sleep(seconds)
    return {k: round(100 * (c.cpu_seconds(v) - start[k]) / seconds, 1) for k, v in groups.items()}


def paired_rounds(args, mf: serving.Modelfleet, temp_dir: str, conns: int) -> tuple[dict, dict]:
    """`args.rounds` rounds of one run on each path, back to back, so that in each round both
    paths share whatever else the machine is doing. Returns each path's median over the rounds
    (every round kept under "rounds") and the median of the rounds' Ray - local differences."""
    rounds = []
    for r in range(args.rounds):
        row = {}
        for key, (endpoint, _) in PATHS.items():
            print(f"  round {r + 1}/{args.rounds}, {LABELS[key]}", flush=True)
            base, path, headers = mf.target(endpoint)
            ray = cluster_pids(temp_dir)
            replicas = mf.replica_pids(endpoint)
            groups = {**mf.groups(endpoint), "ray": [p for p in ray if p not in replicas]}
            row[key] = c.measure(base, [(path, serving.BODY, {**serving.JSON_HEADERS, **headers})], conns,
                                 args.duration, args.warmup, mf.tree_pids() + ray, groups, attempts=1,
                                 quiet_wait_s=5.0)
        rounds.append(row)
    med = lambda xs: round(c.median_of(xs), 3)  # noqa: E731
    runs = {}
    for key in PATHS:
        mine = [r[key] for r in rounds]
        cpu_keys = mine[0]["cpu_us_per_request"]
        runs[key] = {"connections": conns, "rounds": mine, "errors": sum(m["errors"] for m in mine),
                     **{k: med([m[k] for m in mine]) for k in ("rps", "p50_ms", "p99_ms", "foreign_cpu_pct")},
                     "cpu_us_per_request": {k: med([m["cpu_us_per_request"][k] for m in mine]) for k in cpu_keys}}
    paired = {"p50_added_ms": med([r["ray"]["p50_ms"] - r["local"]["p50_ms"] for r in rounds]),
              "p99_added_ms": med([r["ray"]["p99_ms"] - r["local"]["p99_ms"] for r in rounds]),
              "rps_ratio": med([r["ray"]["rps"] / r["local"]["rps"] for r in rounds if r["local"]["rps"]])}
    print(f"  {conns} conns, Ray - local over {args.rounds} rounds (median): p50 {paired['p50_added_ms']:+.3f} ms, "
          f"req/s x{paired['rps_ratio']:.2f}", flush=True)
    return runs, paired


def bench_modelfleet(args, work: Path, model_dir: Path, model_v2_dir: Path) -> dict:
    from modelfleet.backends.ray import cluster as ray_cluster
    mf = serving.Modelfleet(work)
    f = mf.fleet
    temp_dir = None
    out: dict = {"runs": {k: {} for k in PATHS}, "paired": {}, "ready": {}, "update": {}}
    try:
        t = time.perf_counter()
        temp_dir = f.computes.create(COMPUTE)["temp_dir"]
        out["compute_create_s"] = round(time.perf_counter() - t, 2)
        print(f"  compute {COMPUTE!r}: Ray cluster started in {out['compute_create_s']:.1f} s", flush=True)
        f.models.register("iris", model_dir, "1")
        f.models.register("iris", model_v2_dir, "2")
        for endpoint, compute in PATHS.values():
            f.online_endpoints.create(endpoint, compute=compute)
            f.online_deployments.create("blue", endpoint, "iris:1", all_traffic=True)
        out["listening_off_loopback"] = c.listening_off_loopback(mf.tree_pids() + cluster_pids(temp_dir))
        print(f"  listening off loopback: {out['listening_off_loopback'] or 'nothing'}", flush=True)
        local_replicas, ray_replicas = (mf.replica_pids(endpoint) for endpoint, _ in PATHS.values())
        out["idle_cpu_pct"] = idle_cpu_pct({
            "gateway": [mf.server_pid()], "local replica": local_replicas, "Ray replica": ray_replicas,
            "Ray's processes": [p for p in cluster_pids(temp_dir) if p not in ray_replicas]})
        print(f"  idle CPU, % of a core: {out['idle_cpu_pct']}", flush=True)
        # Ray starts its workers, the replica actors included, at its `worker_niceness` (15 unless
        # RAY_worker_niceness is set where the cluster starts): they lose CPU to any other busy process
        out["replica_nice"] = {key: niceness(mf.replica_pids(endpoint)) for key, (endpoint, _) in PATHS.items()}
        print(f"  replicas' nice value: {out['replica_nice']}", flush=True)
        for conns in (args.low, args.connections):
            runs, out["paired"][conns] = paired_rounds(args, mf, temp_dir, conns)
            for key in PATHS:
                out["runs"][key][conns] = runs[key]
        out["replica_memory"] = {key: serving.memory(mf.replica_pids(endpoint))
                                 for key, (endpoint, _) in PATHS.items()}
        for key, (endpoint, compute) in PATHS.items():
            out["ready"][key] = mf.time_to_ready(args.ready_runs, compute=compute)
        for key, (endpoint, _) in PATHS.items():
            print(f"  rolling updates, {LABELS[key]}", flush=True)
            out["update"][key] = mf.switch_over(args.update_connections, args.updates, endpoint=endpoint)
        out["available"] = True
    except Exception as e:  # still report what was measured, and the baseline
        import traceback
        traceback.print_exc()
        out.update(available=False, reason=f"{type(e).__name__}: {e}")
    finally:
        mf.stop()                                              # the server, its agent and local replicas
        if temp_dir:
            out["cluster_pids_stopped"] = len(ray_cluster.stop_local(temp_dir))   # the cluster, by pid
    return out


# -- report -----------------------------------------------------------------------------------

def run_of(result: dict, key: str, conns: int) -> dict | None:
    if key == "serve":
        return (result.get("ray_serve") or {}).get("runs", {}).get(conns)
    return result["modelfleet"]["runs"].get(key, {}).get(conns)


def per_request_rows(result: dict, args) -> list[dict]:
    rows = []
    for conns in (args.low, args.connections):
        for key in ("local", "ray", "serve"):
            r = run_of(result, key, conns)
            if r is None:
                continue
            cpu = r.get("cpu_us_per_request", {})
            rows.append({"path": LABELS[key], "conns": conns, "rps": r["rps"], "p50": r["p50_ms"],
                         "p99": r["p99_ms"], "errors": r["errors"], "gateway": cpu.get("gateway", cpu.get("server")),
                         "replica": cpu.get("replicas"), "ray": cpu.get("ray"), "foreign": r["foreign_cpu_pct"]})
    return rows


def targets(result: dict, args) -> list[dict]:
    out = []
    local1, ray1 = run_of(result, "local", args.low), run_of(result, "ray", args.low)
    local16, ray16 = run_of(result, "local", args.connections), run_of(result, "ray", args.connections)
    serve16 = run_of(result, "serve", args.connections)
    paired = result["modelfleet"].get("paired", {})
    if local1 and ray1:
        added = paired[args.low]["p50_added_ms"]
        out.append({"target": f"Ray path within 1 ms of the local path's p50 ({args.low} conn)",
                    "measured": f"{ray1['p50_ms']:.3f} vs {local1['p50_ms']:.3f} ms; {added:+.3f} ms (median of "
                                f"the rounds' differences)", "met": added <= 1.0})
    if local16 and ray16:
        out.append({"target": f"Ray path req/s against the local path ({args.connections} conns; no aim)",
                    "measured": f"{ray16['rps']:,.0f} vs {local16['rps']:,.0f}; "
                                f"x{paired[args.connections]['rps_ratio']:.2f} (median of the rounds' ratios)",
                    "met": None})
    if ray16 and serve16:
        r = serving.ratio(ray16["rps"], serve16["rps"])
        out.append({"target": f"Ray path above Ray Serve's own proxy in req/s ({args.connections} conns)",
                    "measured": f"{ray16['rps']:,.0f} vs {serve16['rps']:,.0f} ({r}x)", "met": r > 1.0})
    elif not args.no_serve:
        why = (result.get("ray_serve") or {}).get("reason", "not measured")
        out.append({"target": "Ray path above Ray Serve's own proxy in req/s", "measured": why, "met": False})
    return out


def report(result: dict, args) -> str:
    m, mf = result["machine"], result["modelfleet"]
    parts = [f"# Ray compute\n\n{m['nproc']} cores, {m['cpu_model']}, Python {m['python']}; load: "
             f"{m['load_generator']}, closed loop, {args.duration:.0f} s per run after {args.warmup:.0f} s warm-up. "
             f"One replica per path, the same iris model and one-row body. Ray cluster (one head on 127.0.0.1) "
             f"started in {mf.get('compute_create_s', float('nan')):.1f} s; sockets listening off loopback: "
             f"{', '.join(mf.get('listening_off_loopback') or []) or 'none'}"
             + (f" (Ray Serve: {', '.join(result['ray_serve'].get('listening_off_loopback') or []) or 'none'})"
                if (result.get("ray_serve") or {}).get("available") else "") + ".\n"]
    parts.append(f"## Per request\n\nmodelfleet: median of {args.rounds} rounds, each one run on the local path "
                 f"then one on the Ray path. CPU columns: µs of CPU per request from the processes' own counters "
                 "(\"Ray's processes\": the cluster's GCS, raylet and idle workers, the replica actor excluded; "
                 "for Ray Serve everything is under \"gateway\").\n\n" + c.table(per_request_rows(result, args), [
                     ("path", "path"), ("conns", "conns"), ("rps", "req/s"), ("p50", "p50 ms"), ("p99", "p99 ms"),
                     ("errors", "errors"), ("gateway", "gateway CPU µs"), ("replica", "replica CPU µs"),
                     ("ray", "Ray's processes CPU µs"), ("foreign", "other work % CPU")]) + "\n")
    rows = []
    for key in PATHS:
        rd, up = mf.get("ready", {}).get(key), mf.get("update", {}).get(key)
        mem = list((mf.get("replica_memory") or {}).get(key, {}).values())
        row = {"compute": LABELS[key].split(", ")[1]}
        if rd:
            outside = [1000 * t - i for t, i in zip(rd["runs_s"], rd["replica_init_ms"]) if i is not None]
            row.update(ready=1000 * rd["median_s"], ready_runs=", ".join(f"{1000 * t:.0f}" for t in rd["runs_s"]),
                       init=", ".join(str(x) for x in rd["replica_init_ms"]), outside=c.median_of(outside))
        if up:
            row.update(update=up["update_s_median"], update_errors=up["errors_total"], p99x=up["p99_ratio_median"],
                       update_runs=", ".join(f"{u['update_s']:.2f}" for u in up["updates"]))
        if mem:
            row.update(rss=mem[0]["rss_mb"], pss=mem[0]["pss_mb"])
        rows.append(row)
    idle = mf.get("idle_cpu_pct")
    if idle:
        parts.append("CPU taken with no request in flight (5 s, % of one core): "
                     + ", ".join(f"{k} {v:.1f} %" for k, v in idle.items()) + ". Replicas' nice value: "
                     + ", ".join(f"{LABELS[k].split(', ')[1]} {v}" for k, v in mf.get("replica_nice", {}).items())
                     + ".\n")
    parts.append(f"## Lifecycle\n\nCreate -> ready: wall time of `online_deployments.create` on a new endpoint "
                 f"(idle machine, median of {args.ready_runs}); the replica's own model load (imports included) "
                 f"is from its log, the rest is everything around it (placement, snapshots, connection). Update: "
                 f"`online_deployments.update` to the other model version under {args.update_connections} "
                 f"connections of load ({args.updates} runs); errors over the whole loaded run; p99 during / "
                 f"before the update (median).\n\n" + c.table(rows, [
                     ("compute", "compute"), ("ready", "create -> ready median ms"), ("ready_runs", "runs ms"),
                     ("init", "replica's own model load ms"), ("outside", "the rest, median ms"),
                     ("update", "update median s"), ("update_runs", "runs s"), ("update_errors", "errors"),
                     ("p99x", "p99 x during update"), ("rss", "replica RSS MiB"), ("pss", "replica PSS MiB")])
                 + "\n")
    parts.append("## Aims (issue 11)\n\n" + c.table(
        [{**t, "met": {True: "met", False: "NOT met", None: ""}[t["met"]]} for t in result["targets"]],
        [("target", "aim"), ("measured", "measured"), ("met", "")]) + "\n")
    return "\n".join(parts)


def main(argv=None) -> int:
    args = parse_args(argv)
    removed = c.scrub_blas_overrides()
    started = time.monotonic()
    result = {"machine": c.machine(removed), "config": vars(args), "started_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    with tempfile.TemporaryDirectory(prefix="modelfleet-bench-ray-") as tmp:
        work = Path(tmp)
        model_dir, model_v2_dir = work / "iris-v1", work / "iris-v2"
        model = c.train_iris(model_dir)
        c.train_iris(model_v2_dir, C=0.5)
        print("modelfleet: one endpoint on local compute, one on a Ray compute", flush=True)
        result["modelfleet"] = bench_modelfleet(args, work, model_dir, model_v2_dir)
        if not args.no_serve:
            print("Ray Serve", flush=True)
            t = time.monotonic()
            result["ray_serve"] = serving.bench_ray(args, work, model, connections=(args.low, args.connections))
            result["ray_serve"]["bench_s"] = round(time.monotonic() - t, 1)
    result["targets"] = targets(result, args)
    result["total_s"] = round(time.monotonic() - started, 1)
    c.publish("ray_compute", result, report(result, args))
    print(f"in {result['total_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
