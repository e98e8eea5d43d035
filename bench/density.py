"""Density: a thousand endpoints, each with its own small model, on one machine.

Issue 12's targets, measured on one workspace server with shared multi-model workers (the
default placement for no-code models), and compared in the same run with what a user gets
without them, one dedicated replica process per endpoint (`placement: dedicated`):

  1. `Fleet.apply` of one fleet file: N distinct small sklearn models, N endpoints, N deployments;
  2. PSS of the server's whole process tree with every model loaded;
  3. a hot set of endpoints under wrk while the rest idle, against one dedicated endpoint alone;
  4. scale to zero: every deployment given `scale_settings` with `min_instances: 0` and a short
     `idle_timeout` (an update in place), PSS once all are at zero, then a sweep invoking each
     endpoint once (errors; cold start: the latency of each first request);
  5. evict/load cycles, on a second server whose workers have a 1 MiB budget: requests go round
     the endpoints of models that do not fit, so each one evicts a model and loads another;
     its latency (a reload on demand) and the workers' RSS after each `--cycles` cycles;
  6. the dedicated comparison: apply time and PSS for `--dedicated` endpoints with one replica
     process each (extrapolated linearly to N when fewer: a replica costs the same whatever its
     neighbours);
  7. Ray Serve's model multiplexing on the same N model files (bench/baselines/ray_multiplex.py in
     Ray Serve's virtualenv, as bench/serving.py runs its Ray Serve baseline): one deployment, two
     replicas each allowed all N models, the model chosen by a request header. Time from start
     to serving; PSS of every process of its Ray instance after a sweep requesting each model once
     (cold: the first request of each model), then a warm sweep; the same hot set under the same
     wrk load, against one model alone.

    .venv/bin/python bench/density.py [--endpoints 1000] [--hot 20] [--duration 10] [--dedicated 200]
    .venv/bin/python bench/density.py --only rayserve --endpoints 50     # one run alone

Writes bench/results/density.json and density.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as c  # noqa: E402
import serving  # noqa: E402

BODY = orjson.dumps({"data": [c.IRIS_ROW]})
GiB = 2**30
MiB = 2**20
RUNS = ("shared", "evict", "dedicated", "rayserve")
MODEL_HEADER = "serve_multiplexed_model_id"   # Ray Serve's: which model a request is for
RAY_REPLICAS = 2                               # one per core, as modelfleet's shared workers


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--endpoints", type=int, default=1000)
    ap.add_argument("--hot", type=int, default=20, help="endpoints in the hot set under load")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--idle-timeout", type=int, default=10, help="seconds before an idle deployment scales to zero")
    ap.add_argument("--cycles", type=int, default=1000, help="evict/load cycles per RSS reading (two readings)")
    ap.add_argument("--evict-endpoints", type=int, default=200,
                    help="endpoints the evict/load requests go round (models of 64 KiB, 1 MiB budget)")
    ap.add_argument("--dedicated", type=int, default=200,
                    help="endpoints with one dedicated replica each, for the comparison (0: skip)")
    ap.add_argument("--rayserve", action=argparse.BooleanOptionalAction, default=True,
                    help="compare with Ray Serve's model multiplexing on the same models")
    ap.add_argument("--only", default=",".join(RUNS), help=f"comma-separated subset of {','.join(RUNS)}")
    ap.add_argument("--install-timeout", type=float, default=900.0,
                    help="seconds allowed to create Ray Serve's virtualenv (first run only)")
    args = ap.parse_args(argv)
    args.only = [r for r in args.only.split(",") if r]
    unknown = sorted(set(args.only) - set(RUNS))
    if unknown:
        ap.error(f"--only: unknown run(s) {', '.join(unknown)}; choose from {', '.join(RUNS)}")
    return args


# -- the fleet ----------------------------------------------------------------------------------

def make_models(root: Path, n: int, pad_bytes: int = 0) -> list[Path]:
    """`n` distinct iris classifiers: one fit, then each with its weights nudged (distinct files,
    the same cost per request), carrying `pad_bytes` of extra numbers if asked."""
    import joblib
    import numpy as np
    c.train_iris(root / "base")
    base = joblib.load(root / "base" / "model.joblib")
    clf = base[-1]
    if pad_bytes:
        clf.padding_ = np.ones(pad_bytes // 8)
    rng = np.random.default_rng(12)
    saved = clf.coef_.copy()
    out = []
    for i in range(n):
        clf.coef_ = saved + rng.normal(0, 1e-3, saved.shape)
        folder = root / f"m{i:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        joblib.dump(base, folder / "model.joblib")
        out.append(folder)
    return out


def scale_to_zero_supported() -> bool:
    from modelfleet.schema.documents import DeploymentSpec
    return "scale_settings" in DeploymentSpec.model_fields


def fleet_file(path: Path, models: list[Path], prefix: str, placement: str | None = None,
               idle_timeout: int | None = None) -> Path:
    deployment: dict = {}
    if placement:
        deployment["placement"] = placement
    if idle_timeout is not None:
        deployment["scale_settings"] = {"type": "target_utilization", "min_instances": 0, "max_instances": 1,
                                        "idle_timeout": idle_timeout}
    doc = {"models": [{"name": f"{prefix}-{i:04d}", "version": "1", "path": str(m)} for i, m in enumerate(models)],
           "endpoints": [{"name": f"{prefix}-{i:04d}"} for i in range(len(models))],
           "deployments": [{"name": "blue", "endpoint_name": f"{prefix}-{i:04d}", "model": f"{prefix}-{i:04d}:1",
                            **deployment} for i in range(len(models))]}
    path.write_bytes(orjson.dumps(doc))   # JSON is YAML; no anchors for the repeated settings
    return path


def apply(fleet, path: Path) -> tuple[float, int]:
    t = time.perf_counter()
    outcomes = fleet.apply(path, timeout=1800)
    failed = [o for o in outcomes if not o.ok]
    for o in failed[:3]:
        print(f"    apply: {o.change.line()}: {o.message}", flush=True)
    return round(time.perf_counter() - t, 1), len(failed)


# -- measurements -------------------------------------------------------------------------------

def _title(p: psutil.Process) -> str:
    """A process's program and script without their folders: "python ray_multiplex.py", "raylet"."""
    words = [Path(a).name for a in p.cmdline() if a and not a.startswith("-")]
    return " ".join(words[:2 if words and words[0].startswith("python") else 1]) or p.name()


def tree_memory(server_pid: int, by_process: bool = False) -> dict:
    """PSS and RSS summed over `server_pid` and its descendants; with `by_process`, each one's
    PSS in MiB by its program (Ray names its workers after their actor: ray::ServeReplica:...)."""
    rss = pss = 0
    procs = c.tree(server_pid)
    each = []
    for p in procs:
        with contextlib.suppress(psutil.Error):
            m = p.memory_full_info()
            rss, pss = rss + m.rss, pss + m.pss
            each.append({"name": _title(p), "pss_mib": round(m.pss / MiB, 1)})
    out = {"pss_gib": round(pss / GiB, 3), "rss_gib": round(rss / GiB, 3), "processes": len(procs)}
    if by_process:
        out["by_process"] = sorted(each, key=lambda e: -e["pss_mib"])
    return out


def worker_pids(fleet) -> list[int]:
    return sorted({r["pid"] for d in fleet.online_deployments.list() for r in d["replicas"]
                   if r.get("placement") == "shared"})


def worker_rss_mib(pids: list[int]) -> list[float]:
    out = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            out.append(round(psutil.Process(pid).memory_info().rss / MiB, 1))
    return out


def keys_of(fleet, names: list[str]) -> dict[str, str]:
    return {n: fleet.online_endpoints.get_keys(n)["primaryKey"] for n in names}


def sweep(base: str, targets: list[tuple[str, bytes, dict]], timeout: float = 60.0) -> dict:
    """POST each (path, body, headers) target in turn: errors, and the latency of each request."""
    lat, errors = [], []
    with httpx.Client(timeout=timeout) as client:
        for path, body, headers in targets:
            t = time.perf_counter()
            try:
                r = client.post(f"{base}{path}", content=body, headers=headers)
                ok, why = r.status_code == 200, r.status_code
            except httpx.HTTPError as e:
                ok, why = False, repr(e)
            lat.append(time.perf_counter() - t)
            if not ok:
                errors.append(f"{headers.get(MODEL_HEADER) or path}: {why}")   # Ray Serve: the model id
    lat.sort()
    pct = lambda q: round(1000 * lat[min(len(lat) - 1, int(q * len(lat)))], 2)  # noqa: E731
    return {"requests": len(lat), "errors": len(errors), "error_samples": errors[:5], "p50_ms": pct(0.5),
            "p99_ms": pct(0.99), "max_ms": round(1000 * lat[-1], 2), "mean_ms": round(1000 * statistics.fmean(lat), 2)}


def target(name: str, key: str) -> tuple[str, bytes, dict]:
    return (f"/endpoints/{name}/score", BODY, {"Content-Type": "application/json", "Authorization": f"Bearer {key}"})


def targets(keys: dict[str, str], names: list[str] | None = None) -> list[tuple[str, bytes, dict]]:
    return [target(n, keys[n]) for n in (keys if names is None else names)]


def ray_target(model_id: str) -> tuple[str, bytes, dict]:
    return ("/score", BODY, {"Content-Type": "application/json", MODEL_HEADER: model_id})


def all_at(fleet, names: list[str], replicas: int, timeout: float = 600.0) -> bool:
    """Wait until every deployment of `names` has `replicas` replicas."""
    want = set(names)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = {d["endpoint_name"]: len(d["replicas"]) for d in fleet.online_deployments.list()
                  if d["endpoint_name"] in want}
        if len(counts) == len(want) and all(v == replicas for v in counts.values()):
            return True
        time.sleep(2.0)
    return False


# -- the runs -----------------------------------------------------------------------------------

def shared_run(args, fleet, work: Path, models: list[Path], res: dict) -> None:
    names = [f"sh-{i:04d}" for i in range(len(models))]
    print(f"shared: apply {len(names)} endpoints ...", flush=True)
    res["apply_s"], res["apply_failed"] = apply(fleet, fleet_file(work / "shared.json", models, "sh"))
    print(f"    {res['apply_s']:.1f} s, {res['apply_failed']} failed", flush=True)
    status = fleet.server.status()
    base = status["url"]
    keys = keys_of(fleet, names)

    res["warm_sweep"] = sweep(base, targets(keys))
    res["loaded"] = tree_memory(status["pid"])
    res["workers"] = len(worker_pids(fleet))
    print(f"    all loaded: {res['loaded']['pss_gib']:.2f} GiB PSS in {res['loaded']['processes']} processes "
          f"({res['workers']} shared workers); warm sweep p50 {res['warm_sweep']['p50_ms']} ms", flush=True)

    # a hot set under load while the rest idle; then one dedicated endpoint alone, the same load
    fleet.online_endpoints.create("solo")
    fleet.models.register("solo", models[0], "1")
    fleet.online_deployments.create("blue", "solo", "solo:1", placement="dedicated")
    pids = [p.pid for p in c.tree(status["pid"])]
    print(f"    hot set of {args.hot}, then one dedicated endpoint, under wrk ...", flush=True)
    res["hot"] = c.measure(base, targets(keys, names[:args.hot]), args.connections, args.duration,
                           args.warmup, pids)
    solo = target("solo", fleet.online_endpoints.get_keys("solo")["primaryKey"])
    res["solo"] = c.measure(base, [solo], args.connections, args.duration, args.warmup, pids)
    res["hot_ratio"] = round(res["hot"]["rps"] / res["solo"]["rps"], 3) if res["solo"]["rps"] else None
    fleet.online_endpoints.delete("solo")

    if not scale_to_zero_supported():
        return
    print(f"    scale_settings min_instances 0, idle_timeout {args.idle_timeout} s ...", flush=True)
    res["rescale_s"], _ = apply(fleet, fleet_file(work / "zero.json", models, "sh", idle_timeout=args.idle_timeout))
    res["at_zero"] = all_at(fleet, names, 0)
    time.sleep(2.0)   # workers give freed memory back once idle
    res["idle"] = tree_memory(status["pid"])
    print(f"    at zero: {res['idle']['pss_gib']:.2f} GiB PSS; a sweep from zero ...", flush=True)
    res["cold_sweep"] = sweep(base, targets(keys))
    print(f"    {res['cold_sweep']}", flush=True)


def evict_run(args, fleet, work: Path, models: list[Path], res: dict) -> None:
    names = [f"ev-{i:04d}" for i in range(len(models))]
    fleet.server.configure(shared_worker_memory="1Mi")
    print(f"evict/load: {len(names)} endpoints, 1 MiB budget per worker ...", flush=True)
    res["apply_s"], res["apply_failed"] = apply(fleet, fleet_file(work / "evict.json", models, "ev"))
    base = fleet.server.status()["url"]
    keys = keys_of(fleet, names)
    pids = worker_pids(fleet)
    order = [names[i % len(names)] for i in range(args.cycles)]   # round the endpoints: each one was evicted
    rss = [worker_rss_mib(pids)]
    res["sweeps"] = []
    for _ in range(2):
        res["sweeps"].append(sweep(base, targets(keys, order)))
        rss.append(worker_rss_mib(pids))
    res["worker_rss_mib"] = rss
    res["workers_alive"] = worker_pids(fleet) == pids   # not recycled meanwhile
    print(f"    {res['sweeps'][0]}; worker RSS MiB {rss}", flush=True)


def dedicated_run(args, fleet, work: Path, models: list[Path], res: dict) -> None:
    n = args.dedicated
    names = [f"dd-{i:04d}" for i in range(n)]
    print(f"dedicated: apply {n} endpoints ...", flush=True)
    fleet.server.start()
    time.sleep(2.0)   # the zygote is up
    res["empty"] = tree_memory(fleet.server.status()["pid"])
    res["apply_s"], res["apply_failed"] = apply(fleet, fleet_file(work / "dedicated.json", models[:n], "dd",
                                                                  placement="dedicated"))
    status = fleet.server.status()
    res["warm_sweep"] = sweep(status["url"], targets(keys_of(fleet, names)))
    res["memory"] = tree_memory(status["pid"])
    res["replicas"] = n
    per = (res["memory"]["pss_gib"] - res["empty"]["pss_gib"]) / n
    res["pss_per_replica_mib"] = round(per * 1024, 1)
    res["pss_at_n_gib"] = round(res["empty"]["pss_gib"] + per * args.endpoints, 2)
    res["apply_at_n_s"] = round(res["apply_s"] * args.endpoints / n, 1)
    print(f"    {res['apply_s']:.1f} s, {res['memory']['pss_gib']:.2f} GiB PSS for {n} replicas "
          f"({res['pss_per_replica_mib']} MiB each)", flush=True)


def rayserve_run(args, work: Path, models: list[Path], res: dict) -> None:
    """Ray Serve's model multiplexing on the same model files: each model's folder name is its id."""
    ids = [m.name for m in models]
    svc, base = serving.ray_baseline("ray_multiplex", work, "ray_multiplex.py",
                                     ["--models", str(models[0].parent), "--capacity", str(len(ids)),
                                      "--replicas", str(RAY_REPLICAS)], args.install_timeout)
    if svc is None:
        res.update(available=False, reason=base)
        print(f"    Ray Serve not available: {base}", flush=True)
        return
    print(f"Ray Serve multiplexing: {len(ids)} models, {RAY_REPLICAS} replicas ...", flush=True)
    try:
        t = time.perf_counter()
        svc.wait_ready(f"{base}/score", 300)
        res.update(available=True, start_s=round(time.perf_counter() - t, 1), replicas=RAY_REPLICAS,
                   max_num_models_per_replica=len(ids),
                   ray_version=c.run_python(str(c.venv_python("ray")), "import ray; print(ray.__version__)").strip())
        res["empty"] = tree_memory(svc.pid, by_process=True)
        res["cold_sweep"] = sweep(base, [ray_target(i) for i in ids])
        res["loaded"] = tree_memory(svc.pid, by_process=True)
        res["warm_sweep"] = sweep(base, [ray_target(i) for i in ids])
        pids = svc.pids()
        res["listening_off_loopback"] = c.listening_off_loopback(pids)
        print(f"    serving in {res['start_s']:.1f} s; all loaded: {res['loaded']['pss_gib']:.2f} GiB PSS in "
              f"{res['loaded']['processes']} processes ({res['empty']['pss_gib']:.2f} before the first request); "
              f"cold sweep {res['cold_sweep']}; warm p50 {res['warm_sweep']['p50_ms']} ms; listening off "
              f"loopback: {res['listening_off_loopback'] or 'nothing'}", flush=True)
        print(f"    hot set of {args.hot}, then one model alone, under wrk ...", flush=True)
        res["hot"] = c.measure(base, [ray_target(i) for i in ids[:args.hot]], args.connections, args.duration,
                               args.warmup, pids)
        res["solo"] = c.measure(base, [ray_target(ids[0])], args.connections, args.duration, args.warmup, pids)
        res["hot_ratio"] = round(res["hot"]["rps"] / res["solo"]["rps"], 3) if res["solo"]["rps"] else None
    except RuntimeError as e:   # not ready, or its interpreter failed: the other runs still count
        res.update(available=False, reason=str(e))
        print(f"    Ray Serve failed: {e}", flush=True)
    finally:
        svc.stop()


# -- the report ---------------------------------------------------------------------------------

def _met(ok: bool | None) -> str:
    return "not measured" if ok is None else "met" if ok else "missed"


def _sweep_cell(s: dict | None, what: str = "") -> str:
    return f"{s['p50_ms']:.0f} / {s['p99_ms']:.0f} ms{what}" if s else "-"


def rows_of(res: dict, args) -> list[dict]:
    """The targets table: one row per target, a cell per system ("-": not measured there)."""
    sh, ev, dd, ray = (res.get(k) or {} for k in RUNS)
    ray = ray if ray.get("available") else {}
    n = args.endpoints
    rows = []

    def add(target: str, goal: str, verdict: str, shared: str = "-", dedicated: str = "-", rayserve: str = "-"):
        rows.append({"target": target, "goal": goal, "shared": shared, "dedicated": dedicated, "rayserve": rayserve,
                     "verdict": verdict})

    add(f"`fleet apply` of {n} endpoints", "< 60 s", _met(sh["apply_s"] < 60 if sh else None),
        shared=f"{sh['apply_s']:.1f} s" if sh else "-",
        dedicated=f"{dd['apply_s']:.1f} s for {dd['replicas']} (~{dd['apply_at_n_s']:.0f} s for {n})" if dd else "-",
        rayserve=f"{ray['start_s']:.1f} s from start to serving (one deployment)" if ray else "-")
    add("PSS of the server tree, every model loaded", "< 2 GiB", _met(sh["loaded"]["pss_gib"] < 2 if sh else None),
        shared=f"{sh['loaded']['pss_gib']:.2f} GiB" if sh else "-",
        dedicated=(f"{dd['memory']['pss_gib']:.2f} GiB for {dd['replicas']} (~{dd['pss_at_n_gib']:.1f} GiB for {n})"
                   if dd else "-"),
        rayserve=(f"{ray['loaded']['pss_gib']:.2f} GiB ({ray['loaded']['processes']} processes; "
                  f"{ray['empty']['pss_gib']:.2f} GiB before the first request)" if ray else "-"))
    idle, cold, rcold = sh.get("idle"), sh.get("cold_sweep"), ray.get("cold_sweep")
    add("PSS, idle after scale to zero", "< 0.5 GiB", _met(idle["pss_gib"] < 0.5 if idle else None),
        shared=f"{idle['pss_gib']:.2f} GiB" if idle else "not measured (no scale_settings)" if sh else "-")
    add(f"sweep of the {n} endpoints from zero: errors", "0", _met(cold["errors"] == 0 if cold else None),
        shared=str(cold["errors"]) if cold else "-",
        rayserve=f"{rcold['errors']} (first request of each model)" if rcold else "-")
    add("cold start from zero p50 / p99", "< 50 / < 300 ms",
        _met(cold["p50_ms"] < 50 and cold["p99_ms"] < 300 if cold else None),
        shared=_sweep_cell(cold), rayserve=_sweep_cell(rcold, " (first request of each model)"))
    add("sweep with every model loaded p50 / p99", "-", "", shared=_sweep_cell(sh.get("warm_sweep")),
        dedicated=_sweep_cell(dd.get("warm_sweep")), rayserve=_sweep_cell(ray.get("warm_sweep")))

    def hot_cell(r: dict, alone: str) -> str:
        ratio = f"{r['hot_ratio']:.2f}x" if r.get("hot_ratio") is not None else "-"
        return f"{r['hot']['rps']:,.0f} vs {r['solo']['rps']:,.0f} req/s = {ratio}{alone}" if r else "-"

    add(f"hot set of {args.hot} under wrk vs one dedicated endpoint", ">= 0.9x",
        _met(sh["hot_ratio"] is not None and sh["hot_ratio"] >= 0.9 if sh else None),
        shared=hot_cell(sh, ""), rayserve=hot_cell(ray, " (vs one model alone)"))
    if ev:
        first, second = ev["sweeps"]
        add(f"{2 * args.cycles:,} evict/load cycles: errors; reload p50 / p99", "0",
            _met(first["errors"] + second["errors"] == 0),
            shared=f"{first['errors'] + second['errors']}; {first['p50_ms']:.1f} / {first['p99_ms']:.1f} ms")
        rss = ev["worker_rss_mib"]
        flat = all(abs(b - a) <= max(4.0, 0.03 * a) for a, b in zip(rss[1], rss[2], strict=False))
        add(f"worker RSS after 0, {args.cycles:,} and {2 * args.cycles:,} cycles", "flat",
            _met(flat and ev["workers_alive"]), shared=" -> ".join("/".join(f"{x:.0f}" for x in r) + " MiB" for r in rss))
    return rows


def report(res: dict, args) -> str:
    m, sh, ray = res["machine"], res.get("shared") or {}, res.get("rayserve")
    table = c.table(rows_of(res, args), [("target", "target"), ("goal", "goal"), ("shared", "shared workers"),
                                         ("dedicated", "dedicated replicas"), ("rayserve", "Ray Serve multiplexing"),
                                         ("verdict", "")])
    about = f" {sh['workers']} shared workers." if sh else ""
    if ray and ray.get("available"):
        about += (f" Ray Serve {ray['ray_version']}: one deployment, {ray['replicas']} replicas, "
                  f"max_num_models_per_replica {ray['max_num_models_per_replica']}, the model chosen by the "
                  f"`{MODEL_HEADER}` header; listening off loopback: "
                  f"{', '.join(ray['listening_off_loopback']) or 'nothing'}.")
    elif ray:
        about += f" Ray Serve multiplexing not measured: {ray['reason']}."
    return (f"# Density: {args.endpoints} endpoints on one machine\n\n{m['nproc']} cores, {m['cpu_model']}, "
            f"{m['memory_gib']} GiB, Python {m['python']}; load: {m['load_generator']}, {args.duration:.0f} s "
            f"per run, {args.connections} connections.{about}\n\n{table}\n")


def main(argv=None) -> int:
    args = parse_args(argv)
    removed = c.scrub_blas_overrides()
    res: dict = {"machine": c.machine(removed), "started_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                 "endpoints": args.endpoints, "scale_to_zero": scale_to_zero_supported(), "runs": args.only}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="modelfleet-bench-density-") as tmp:
        work = Path(tmp)
        for k in ("FLEET_WORKSPACE", "FLEET_DATABASE_URL"):
            os.environ.pop(k, None)
        models = make_models(work / "models", args.endpoints)
        from modelfleet import Fleet
        runs = []
        if "shared" in args.only:
            runs.append(("shared", shared_run, models))
        if "evict" in args.only:
            runs.append(("evict", evict_run, make_models(work / "padded", args.evict_endpoints, pad_bytes=64 * 1024)))
        if "dedicated" in args.only and args.dedicated:
            runs.append(("dedicated", dedicated_run, models))
        for label, runner, these in runs:
            os.environ["FLEET_HOME"] = str(work / f"home-{label}")
            fleet = Fleet()
            res[label] = {}
            try:
                runner(args, fleet, work, these, res[label])
            finally:
                c.stop_fleet(fleet)
        if "rayserve" in args.only and args.rayserve:   # last: alone on the machine, the servers above stopped
            res["rayserve"] = {}
            rayserve_run(args, work, models, res["rayserve"])
    res["bench_s"] = round(time.monotonic() - started)
    c.publish("density", res, report(res, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
