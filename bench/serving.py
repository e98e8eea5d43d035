"""Serving benchmark: modelfleet against a minimal FastAPI app, mlflow, Ray Serve and BentoML.

Every system serves the same scikit-learn model (the quickstart's iris LogisticRegression
pipeline) on 127.0.0.1, one system at a time, under the same closed-loop load (wrk with a Lua
POST script). Also measured on modelfleet: latency at low concurrency (gateway overhead), time
from `online_deployments.create` to ready, and errors and p99 during a rolling update.

    .venv/bin/python bench/serving.py                 # about 5 minutes (+5 the first time: virtualenvs)
    .venv/bin/python bench/serving.py --quick         # about 2 minutes, modelfleet/FastAPI/mlflow
    .venv/bin/python bench/serving.py --only modelfleet,fastapi --duration 5

Writes bench/results/serving.json and bench/results/serving.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as c  # noqa: E402
import rounds  # noqa: E402

SYSTEMS = ("modelfleet", "fastapi", "mlflow", "ray", "bentoml")
BODY = orjson.dumps({"data": [c.IRIS_ROW]})
JSON_HEADERS = {"Content-Type": "application/json"}


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=10.0, help="seconds of measured load per run")
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds of unmeasured load before each run")
    ap.add_argument("--connections", type=int, default=16, help="connections of the main comparison")
    ap.add_argument("--batch-connections", type=int, default=64, help="connections of the batching runs")
    ap.add_argument("--low", default="1,4", help="connection counts for the gateway-overhead runs")
    ap.add_argument("--ready-runs", type=int, default=5, help="deployments created to time create -> ready")
    ap.add_argument("--only", default=",".join(SYSTEMS), help=f"comma-separated subset of {','.join(SYSTEMS)}")
    ap.add_argument("--install-timeout", type=float, default=420.0,
                    help="seconds allowed to create each baseline's virtualenv (first run only)")
    ap.add_argument("--quick", action="store_true", help="short runs; modelfleet, FastAPI and mlflow only")
    ap.add_argument("--models", default="iris,forest",
                    help="iris (the quickstart pipeline) and/or forest (a 100-tree random forest)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="measure every system this many times, round after round; report each run's median")
    ap.add_argument("--peer-rounds", type=int, default=None,
                    help="rounds in which mlflow, Ray Serve and BentoML run (default: every round)")
    ap.add_argument("--attempts", type=int, default=3,
                    help="runs disturbed by other work (> 10%% of the CPU) are repeated, up to this many in all")
    ap.add_argument("--quiet-wait", type=float, default=20.0,
                    help="seconds each run waits at most for the machine to go idle")
    ap.add_argument("--serving-only", action="store_true",
                    help="only the load runs (no create -> ready, no rolling update)")
    args = ap.parse_args(argv)
    if args.quick:
        args.duration, args.warmup, args.ready_runs = 3.0, 1.0, 3
        if args.only == ",".join(SYSTEMS):
            args.only = "modelfleet,fastapi,mlflow"
    args.only = [s for s in args.only.split(",") if s]
    args.models = [m for m in args.models.split(",") if m]
    args.low = [int(x) for x in args.low.split(",") if x]
    return args


# -- measuring ------------------------------------------------------------------------------

def measure(args, base: str, path: str, body: bytes, headers: dict, connections: int, pids: list[int],
            groups: dict | None = None) -> dict:
    return c.measure(base, [(path, body, {**JSON_HEADERS, **headers})], connections, args.duration, args.warmup,
                     pids, groups, attempts=args.attempts, quiet_wait_s=args.quiet_wait)


def memory(pids: list[int]) -> dict:
    """RSS of each pid (MiB) and, per pid, USS/PSS (what it does not share with others)."""
    out = {}
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            m = psutil.Process(pid).memory_full_info()
            out[pid] = {"rss_mb": round(m.rss / 2**20, 1), "uss_mb": round(m.uss / 2**20, 1),
                        "pss_mb": round(getattr(m, "pss", 0) / 2**20, 1)}
    return out


def unavailable(reason: str) -> dict:
    print(f"    not available: {reason}", flush=True)
    return {"available": False, "reason": reason}


# -- modelfleet -------------------------------------------------------------------------------

class Modelfleet:
    """One workspace server with an unbatched and a batched deployment of the same model."""

    def __init__(self, work: Path):
        for k in ("FLEET_WORKSPACE", "FLEET_DATABASE_URL"):
            os.environ.pop(k, None)
        os.environ["FLEET_HOME"] = str(work / "fleet-home")
        from modelfleet import Fleet
        self.fleet = Fleet()

    def setup(self, model_dir: Path, model_v2_dir: Path, forest_dir: Path | None = None) -> None:
        f = self.fleet
        f.models.register("iris", model_dir, "1")
        f.models.register("iris", model_v2_dir, "2")
        models = [("iris", "iris:1")]
        if forest_dir is not None:
            f.models.register("forest", forest_dir, "1")
            models.append(("forest", "forest:1"))
        for endpoint, model in models:
            # the default (the fast path), the same with `fast_path: false`, and batching
            f.online_endpoints.create(endpoint)
            f.online_deployments.create("blue", endpoint, model, all_traffic=True)
            f.online_endpoints.create(f"{endpoint}-checked")
            f.online_deployments.create("blue", f"{endpoint}-checked", model, all_traffic=True, fast_path=False)
            f.online_endpoints.create(f"{endpoint}-batch")
            f.online_deployments.create("blue", f"{endpoint}-batch", model, all_traffic=True,
                                        batching={"max_batch_size": 32, "max_batch_wait_ms": 2},
                                        request_settings={"max_concurrent_requests_per_instance": 64})
        self.fast_paths = {ep: {k: d[k] for k in ("fast_path_used", "fast_path_reason")}
                           for ep in [e for m, _ in models for e in (m, f"{m}-checked", f"{m}-batch")]
                           for d in [f.online_deployments.get("blue", ep)]}

    def target(self, endpoint: str) -> tuple[str, str, dict]:
        ep = self.fleet.online_endpoints.get(endpoint)
        key = self.fleet.online_endpoints.get_keys(endpoint)["primaryKey"]
        base, path = re.match(r"(http://[^/]+)(/.*)", ep["scoring_uri"]).groups()
        return base, path, {"Authorization": f"Bearer {key}"}

    def server_pid(self) -> int:
        return self.fleet.server.status()["pid"]

    def replica_pids(self, endpoint: str) -> list[int]:
        return [r["pid"] for r in self.fleet.online_deployments.get("blue", endpoint)["replicas"]]

    def tree_pids(self) -> list[int]:
        """The server and everything under it (the replica zygote, when used, and all replicas)."""
        return [p.pid for p in c.tree(self.server_pid())]

    def zygote_pid(self) -> int | None:
        for p in c.tree(self.server_pid())[1:]:
            with contextlib.suppress(psutil.Error):
                if "modelfleet.runtime.zygote" in " ".join(p.cmdline()) and p.ppid() == self.server_pid():
                    return p.pid
        return None

    def groups(self, endpoint: str) -> dict:
        return {"gateway": [self.server_pid()], "replicas": self.replica_pids(endpoint)}

    def memory(self, endpoint: str) -> dict:
        """Memory of what serves `endpoint`: the server, the zygote (if any) and its replicas."""
        server, zygote = self.server_pid(), self.zygote_pid()
        reps = self.replica_pids(endpoint)
        mem = memory([server, *([zygote] if zygote else []), *reps])
        return {"rss_mb": round(sum(m["rss_mb"] for m in mem.values()), 1),
                "pss_mb": round(sum(m["pss_mb"] for m in mem.values()), 1),
                "server": mem.get(server, {}), "zygote": mem.get(zygote) if zygote else None,
                "replicas": [mem[p] for p in reps if p in mem]}

    def time_to_ready(self, runs: int, env: dict | None = None, compute: str = "local") -> dict:
        """Wall time of online_deployments.create (it returns once the deployment is ready), on a
        new endpoint on `compute`."""
        f = self.fleet
        # one endpoint name per compute: a replica's server-side log is kept by endpoint and deployment
        endpoint = "ready-test" if compute == "local" else f"ready-test-{compute}"
        f.online_endpoints.create(endpoint, compute=compute)
        times, replica_ms = [], []
        for i in range(runs):
            c.wait_quiet()
            t = time.perf_counter()
            f.online_deployments.create(f"dep{i}", endpoint, "iris:1", all_traffic=True,
                                        environment_variables=env or {})
            times.append(time.perf_counter() - t)
            # the replica's own log, wherever it runs; a Ray replica's, on its node, keeps the lines
            # of earlier replicas of the same id (same spec), so the last line is this one's
            found = re.findall(r"ready in (\d+) ms", f.online_deployments.get_logs(f"dep{i}", endpoint, lines=50))
            replica_ms.append(int(found[-1]) if found else None)
            f.online_deployments.delete(f"dep{i}", endpoint)
        f.online_endpoints.delete(endpoint)
        on = f" on compute {compute}" if compute != "local" else ""
        print(f"    create -> ready{on}{' with ' + str(env) if env else ''}: median {c.median_of(times):.3f} s "
              f"({', '.join(f'{t:.3f}' for t in times)}); the replica's own model load "
              f"{', '.join(str(x) for x in replica_ms)} ms", flush=True)
        return {"runs_s": [round(t, 3) for t in times], "median_s": round(c.median_of(times), 3),
                "replica_init_ms": replica_ms, "environment_variables": env or {}, "compute": compute}

    def switch_over(self, connections: int, updates: int = 3, steady_s: float = 3.0,
                    settle_s: float = 1.0, endpoint: str = "iris") -> dict:
        """Load `endpoint` with the per-request recorder while its deployment "blue" moves between
        iris:1 and iris:2 `updates` times. Each update's "during" window runs from the call until
        `settle_s` after it returned (switch, drain, first requests on the new replica); its
        "before" window is the steady state just before the call."""
        base, path, headers = self.target(endpoint)
        rec = c.Recorder(base, [(path, BODY, {**JSON_HEADERS, **headers})])
        c.wait_quiet()
        runner = threading.Thread(target=rec.run, args=(connections, 300.0), daemon=True)  # stopped below
        runner.start()
        time.sleep(0.5)
        marks = []
        for i in range(updates):
            time.sleep(steady_s)
            old = self.replica_pids(endpoint)
            t_call = time.perf_counter() - rec.start_clock
            self.fleet.online_deployments.update("blue", endpoint, model="iris:2" if i % 2 == 0 else "iris:1")
            t_done = time.perf_counter() - rec.start_clock
            marks.append((t_call, t_done, old, self.replica_pids(endpoint)))
        time.sleep(steady_s)
        rec.stop_clock = time.perf_counter()
        runner.join(30)
        runs, prev_end = [], 0.5
        for t_call, t_done, old, new in marks:
            before = rec.stats(max(prev_end, t_call - steady_s), t_call)
            during = rec.stats(t_call, t_done + settle_s)
            prev_end = t_done + settle_s
            runs.append({"update_s": round(t_done - t_call, 3), "old_replicas": old, "new_replicas": new,
                         "before": before, "during": during, "errors_during": during["errors"],
                         "p99_ratio": round(during["p99_ms"] / before["p99_ms"], 2) if before["p99_ms"] else None})
        ratios = sorted(r["p99_ratio"] for r in runs if r["p99_ratio"] is not None)
        out = {"connections": connections, "settle_s": settle_s, "updates": runs,
               "errors_during": sum(r["errors_during"] for r in runs),
               "errors_total": rec.stats(0, float("inf"))["errors"],
               "p99_ratio_median": ratios[len(ratios) // 2] if ratios else None,
               "p99_ratio_max": ratios[-1] if ratios else None,
               "update_s_median": round(c.median_of([r["update_s"] for r in runs]), 3)}
        for i, r in enumerate(runs):
            print(f"    update {i + 1} under load ({connections} conns): took {r['update_s']:.2f} s, errors "
                  f"{r['errors_during']}, p99 before {r['before']['p99_ms']:.2f} ms, during "
                  f"{r['during']['p99_ms']:.2f} ms (x{r['p99_ratio']})", flush=True)
        return out

    def stop(self) -> None:
        pids = []
        with contextlib.suppress(Exception):
            pids = self.tree_pids()
        with contextlib.suppress(Exception):
            self.fleet.server.stop()
        c.stop_pids(pids, 5.0)   # replicas die with the server; this only makes sure
        self.fleet.close()


def bench_modelfleet(args, work: Path, model_dir: Path, model_v2_dir: Path, forest_dir: Path | None,
                     with_extras: bool = True) -> dict:
    mf = Modelfleet(work)
    try:
        return run_modelfleet(args, mf, model_dir, model_v2_dir, forest_dir, with_extras)
    except Exception as e:  # still report the other systems
        import traceback
        traceback.print_exc()
        return unavailable(f"{type(e).__name__}: {e}")
    finally:
        mf.stop()


def run_modelfleet(args, mf: Modelfleet, model_dir: Path, model_v2_dir: Path, forest_dir: Path | None,
                   with_extras: bool = True) -> dict:
    t = time.perf_counter()
    mf.setup(model_dir, model_v2_dir, forest_dir)
    out = {"available": True, "setup_s": round(time.perf_counter() - t, 2), "runs": {}, "batched_runs": {},
           "checked_runs": {}, "low_concurrency": {}, "fast_paths": mf.fast_paths}
    pids = mf.tree_pids()
    for ep, fp in mf.fast_paths.items():
        print(f"  {ep}: fast path {fp['fast_path_used']} ({fp['fast_path_reason']})", flush=True)
    if forest_dir is not None:
        out["forest"] = {"available": True, "runs": {}, "batched_runs": {}, "checked_runs": {}}
        for key, endpoint, conn_counts in (("runs", "forest", (args.connections,)),
                                           ("checked_runs", "forest-checked", (args.connections,)),
                                           ("batched_runs", "forest-batch", (args.batch_connections,))):
            print(f"  forest: {endpoint}", flush=True)
            base, path, headers = mf.target(endpoint)
            for conns in conn_counts:
                out["forest"][key][conns] = measure(args, base, path, BODY, headers, conns, pids,
                                                    mf.groups(endpoint))
        out["forest"]["memory"] = mf.memory("forest")
    print("  fast_path: false", flush=True)
    base, path, headers = mf.target("iris-checked")
    for conns in (args.connections, args.batch_connections):
        out["checked_runs"][conns] = measure(args, base, path, BODY, headers, conns, pids, mf.groups("iris-checked"))
    out["checked_memory"] = mf.memory("iris-checked")
    base, path, headers = mf.target("iris")
    groups = mf.groups("iris")
    print("  unbatched", flush=True)
    for conns in (args.connections, args.batch_connections):
        out["runs"][conns] = measure(args, base, path, BODY, headers, conns, pids, groups)
    out["memory"] = mf.memory("iris")
    for conns in args.low:
        out["low_concurrency"][conns] = measure(args, base, path, BODY, headers, conns, pids, groups)
    print("  batching (max_batch_size 32, max_batch_wait_ms 2)", flush=True)
    base, path, headers = mf.target("iris-batch")
    groups = mf.groups("iris-batch")
    for conns in (args.connections, args.batch_connections):
        out["batched_runs"][conns] = measure(args, base, path, BODY, headers, conns, pids, groups)
    out["batched_memory"] = mf.memory("iris-batch")
    if args.serving_only or not with_extras:   # create -> ready and the rolling update: in the first round
        return out
    out["ready"] = mf.time_to_ready(args.ready_runs)
    # a deployment that sets a native-library variable gets a fresh interpreter instead of a fork
    out["ready_cold"] = mf.time_to_ready(args.ready_runs, {"OMP_NUM_THREADS": "1"})
    out["switch_over"] = mf.switch_over(args.connections)
    return out


# -- baselines --------------------------------------------------------------------------------

def bench_service(args, svc: c.Service, ready_url: str, base: str, path: str, body: bytes,
                  ready_timeout: float, post_ready: bool = False, connections: tuple[int, ...] | None = None) -> dict:
    """Wait for `svc`, load it at `connections` (default: the main and the batching counts), stop it."""
    try:
        t = time.perf_counter()
        svc.wait_ready(ready_url, ready_timeout, body if post_ready else None,
                       JSON_HEADERS if post_ready else None)
        out = {"available": True, "startup_s": round(time.perf_counter() - t, 2), "runs": {},
               "listening_off_loopback": c.listening_off_loopback(svc.pids())}
        for conns in connections or (args.connections, args.batch_connections):
            out["runs"][conns] = measure(args, base, path, body, {}, conns, svc.pids(), {"server": svc.pids()})
            mem = memory(svc.pids())
            out["memory"] = {"rss_mb": round(sum(m["rss_mb"] for m in mem.values()), 1),
                             "pss_mb": round(sum(m["pss_mb"] for m in mem.values()), 1), "processes": len(mem)}
        for conns in args.low if svc.name == "fastapi" else ():
            out.setdefault("low_concurrency", {})[conns] = measure(args, base, path, body, {}, conns, svc.pids(),
                                                                   {"server": svc.pids()})
        return out
    except RuntimeError as e:
        return unavailable(str(e))
    finally:
        svc.stop()


def bench_fastapi(args, work: Path, model: Path) -> dict:
    port = c.free_port()
    svc = c.Service("fastapi", [c.PYTHON, str(c.BENCH / "baselines" / "fastapi_app.py"), "--model", str(model),
                                "--port", str(port)], work)
    base = f"http://{c.HOST}:{port}"
    return bench_service(args, svc, f"{base}/health", base, "/score", BODY, 60)


def sklearn_pin() -> str:
    import sklearn
    return f"scikit-learn=={sklearn.__version__}"   # the pickled model loads only in the same version


def bench_mlflow(args, work: Path, model: Path) -> dict:
    py, why = c.ensure_venv("mlflow", ["mlflow", sklearn_pin()], args.install_timeout)
    if py is None:
        return unavailable(why)
    saved = work / "mlflow-model"
    try:
        c.run_python(str(py), "import joblib, mlflow.sklearn; "
                     f"mlflow.sklearn.save_model(joblib.load({str(model)!r}), {str(saved)!r}, "
                     "serialization_format='cloudpickle')", timeout=300)   # skops (the default) refuses a forest
    except (RuntimeError, OSError) as e:
        return unavailable(f"mlflow.sklearn.save_model failed: {e}")
    port = c.free_port()
    env = c.clean_env({"PATH": f"{py.parent}{os.pathsep}{os.environ.get('PATH', '')}",
                       "MLFLOW_TRACKING_URI": (work / "mlruns").as_uri()})
    svc = c.Service("mlflow", [str(py.parent / "mlflow"), "models", "serve", "-m", str(saved), "-h", c.HOST,
                               "-p", str(port), "--env-manager", "local"], work, env=env)
    base = f"http://{c.HOST}:{port}"
    body = orjson.dumps({"inputs": [c.IRIS_ROW]})   # mlflow's own request format
    out = bench_service(args, svc, f"{base}/ping", base, "/invocations", body, 120)
    out["command"] = f"mlflow models serve -m <saved model> -h {c.HOST} -p <port> --env-manager local"
    return out


def ray_baseline(name: str, work: Path, script: str, script_args: list[str],
                 install_timeout: float) -> tuple[c.Service | None, str]:
    """Start one of bench/baselines' Ray Serve apps in Ray Serve's virtualenv, on a free port:
    (the service, its base URL), or (None, why not)."""
    py, why = c.ensure_venv("ray", ["ray[serve]", sklearn_pin()], install_timeout)
    if py is None:
        return None, why
    from modelfleet.backends.ray.cluster import ray_environment
    port = c.free_port()
    # ray_environment keeps every Ray process on 127.0.0.1 (on Linux Ray otherwise takes the
    # machine's network address even for a local instance)
    env = c.clean_env({"RAY_AUTH_MODE": "disabled", **ray_environment(None)})
    svc = c.Service(name, [str(py), str(c.BENCH / "baselines" / script), *script_args, "--port", str(port)], work,
                    env=env)
    return svc, f"http://{c.HOST}:{port}"


def bench_ray(args, work: Path, model: Path, connections: tuple[int, ...] | None = None) -> dict:
    svc, base = ray_baseline("ray", work, "ray_app.py", ["--model", str(model)], args.install_timeout)
    if svc is None:
        return unavailable(base)
    return bench_service(args, svc, f"{base}/score", base, "/score", BODY, 180, post_ready=True,
                         connections=connections)


def bench_bentoml(args, work: Path, model: Path) -> dict:
    py, why = c.ensure_venv("bentoml", ["bentoml", sklearn_pin()], args.install_timeout)
    if py is None:
        return unavailable(why)
    port = c.free_port()
    env = c.clean_env({"BENTOML_HOME": str(work / "bentoml-home"), "BENCH_MODEL": str(model),
                       "BENTOML_DO_NOT_TRACK": "True"})
    svc = c.Service("bentoml", [str(py.parent / "bentoml"), "serve", "bento_app:Scorer", "--host", c.HOST,
                                "--port", str(port)], work, env=env, cwd=c.BENCH / "baselines")
    base = f"http://{c.HOST}:{port}"
    return bench_service(args, svc, f"{base}/score", base, "/score", BODY, 120, post_ready=True)


# -- report -----------------------------------------------------------------------------------

def ratio(a, b) -> float | None:
    return round(a / b, 2) if a and b else None


def comparison_rows(systems: dict, conns: int) -> list[dict]:
    fa = systems.get("fastapi", {}).get("runs", {}).get(conns)
    ml = systems.get("mlflow", {}).get("runs", {}).get(conns)
    rows = []
    mf = systems.get("modelfleet", {})
    entries = [("modelfleet (fast path)", mf.get("runs", {}).get(conns), mf.get("memory")),
               ("modelfleet, fast_path: false", mf.get("checked_runs", {}).get(conns), mf.get("checked_memory")),
               ("modelfleet, batching (fast path)", mf.get("batched_runs", {}).get(conns), mf.get("batched_memory"))]
    labels = {"fastapi": "FastAPI + uvicorn", "mlflow": "mlflow models serve", "ray": "Ray Serve",
              "bentoml": "BentoML"}
    for name, label in labels.items():
        s = systems.get(name, {})
        entries.append((label, s.get("runs", {}).get(conns), s.get("memory")))
    for label, run, mem in entries:
        if run is None:
            continue
        rows.append({"system": label, "rps": run["rps"], "p50": run["p50_ms"], "p99": run["p99_ms"],
                     "errors": run["errors"], "rss": (mem or {}).get("rss_mb"), "pss": (mem or {}).get("pss_mb"),
                     "vs_fastapi": ratio(run["rps"], fa and fa["rps"]),
                     "vs_mlflow": ratio(run["rps"], ml and ml["rps"]),
                     "p99_vs_fastapi": ratio(run["p99_ms"], fa and fa["p99_ms"])})
    for name in ("mlflow", "ray", "bentoml"):
        s = systems.get(name)
        if s and not s.get("available"):
            rows.append({"system": labels[name], "rps": None, "errors": f"not available: {s['reason'][:80]}"})
    return rows


def targets(systems: dict, conns: int, batch_conns: int, forest: dict | None = None) -> list[dict]:
    mf, fa, ml = (systems.get(k, {}) for k in ("modelfleet", "fastapi", "mlflow"))
    get = lambda s, key, n: s.get(key, {}).get(n)  # noqa: E731
    mf16, fa16, ml16 = get(mf, "runs", conns), get(fa, "runs", conns), get(ml, "runs", conns)
    mfb, fab = get(mf, "batched_runs", batch_conns), get(fa, "runs", batch_conns)
    out = []

    def add(name, measured, ok):
        out.append({"target": name, "measured": measured, "met": ok})

    # issue 26: the fast path against FastAPI calling scikit-learn on the same model
    if mf16 and fa16:
        r = ratio(mf16["rps"], fa16["rps"])
        add(f"fast path, iris pipeline, {conns} conns >= 3x FastAPI", f"{r}x", r >= 3.0)
    ff, fa_f = (forest or {}).get("modelfleet", {}), (forest or {}).get("fastapi", {})
    if get(ff, "runs", conns) and get(fa_f, "runs", conns):
        r = ratio(ff["runs"][conns]["rps"], fa_f["runs"][conns]["rps"])
        add(f"fast path, 100-tree forest, {conns} conns >= 5x FastAPI", f"{r}x", r >= 5.0)
    if mfb and fab:
        r = ratio(mfb["rps"], fab["rps"])
        add(f"fast path + batching, iris pipeline, {batch_conns} conns >= 10x FastAPI", f"{r}x", r >= 10.0)

    if mf16 and fa16:
        r = ratio(mf16["rps"], fa16["rps"])
        add(f"full path >= 1.0x FastAPI req/s at {conns} conns", f"{r}x", r >= 1.0)
        r = ratio(mf16["p99_ms"], fa16["p99_ms"])
        add("p99 no worse than FastAPI", f"{mf16['p99_ms']:.2f} vs {fa16['p99_ms']:.2f} ms ({r}x)", r <= 1.0)
    if mf16 and ml16:
        r = ratio(mf16["rps"], ml16["rps"])
        add(f">= 5x mlflow req/s at {conns} conns", f"{r}x", r >= 5.0)
    if mfb and fab:
        r = ratio(mfb["rps"], fab["rps"])
        add(f"batching at {batch_conns} conns >= 3x FastAPI", f"{r}x", r >= 3.0)
    for n, run in sorted(mf.get("low_concurrency", {}).items()):
        base = fa.get("low_concurrency", {}).get(n)
        if base:
            added = run["p50_ms"] - base["p50_ms"]
            add(f"gateway overhead < 1 ms added to p50 ({n} conn)",
                f"{run['p50_ms']:.3f} vs {base['p50_ms']:.3f} ms (+{added:.3f} ms)", added < 1.0)
    if mf.get("ready"):
        add("new sklearn deployment ready < 1 s (median)", f"{mf['ready']['median_s']:.3f} s",
            mf["ready"]["median_s"] < 1.0)
    if mf.get("switch_over"):
        so = mf["switch_over"]
        add("update switch-over: no errors, p99 spike <= 2x",
            f"{so['errors_total']} errors; p99 during/before x{so['p99_ratio_median']} median of "
            f"{len(so['updates'])} (max x{so['p99_ratio_max']})",
            so["errors_total"] == 0 and (so["p99_ratio_median"] or 0) <= 2.0)
    if mf.get("memory"):
        rss = max(r["rss_mb"] for r in mf["memory"]["replicas"])
        pss = max(r["pss_mb"] for r in mf["memory"]["replicas"])
        add("RSS per sklearn replica < 120 MB", f"{rss:.1f} MiB RSS ({rss * 1.048576:.1f} MB); PSS {pss:.1f} MiB",
            rss * 1.048576 < 120)
    return out


COLS = [("system", "system"), ("rps", "req/s"), ("p50", "p50 ms"), ("p99", "p99 ms"), ("errors", "errors"),
        ("rss", "RSS MiB (sum)"), ("pss", "PSS MiB (sum)"), ("vs_fastapi", "x FastAPI"), ("vs_mlflow", "x mlflow"),
        ("p99_vs_fastapi", "p99 x FastAPI")]


def cpu_rows(systems: dict) -> list[dict]:
    rows = []
    mf = systems.get("modelfleet", {})
    runs = [("modelfleet", r) for r in mf.get("runs", {}).values()]
    runs += [("modelfleet", r) for r in mf.get("low_concurrency", {}).values()]
    runs += [("modelfleet, fast_path: false", r) for r in mf.get("checked_runs", {}).values()]
    runs += [("modelfleet, batching", r) for r in mf.get("batched_runs", {}).values()]
    for name, label in (("fastapi", "FastAPI + uvicorn"), ("mlflow", "mlflow models serve"), ("ray", "Ray Serve"),
                        ("bentoml", "BentoML")):
        s = systems.get(name, {})
        runs += [(label, r) for r in [*s.get("runs", {}).values(), *s.get("low_concurrency", {}).values()]]
    for label, r in runs:
        cpu = r.get("cpu_us_per_request", {})
        front = cpu.get("gateway", cpu.get("server"))
        model = cpu.get("replicas")
        rows.append({"system": label, "conns": r["connections"], "rps": r["rps"], "front": front, "model": model,
                     "total": (front or 0) + (model or 0)})
    return rows


def report(result: dict, args) -> str:
    systems = result["systems"]
    mf = systems.get("modelfleet", {})
    parts = [f"# Serving benchmark\n\n{result['machine']['nproc']} cores, {result['machine']['cpu_model']}, "
             f"Python {result['machine']['python']}; load: {result['machine']['load_generator']}, closed loop, "
             f"{args.duration:.0f} s per run after {args.warmup:.0f} s warm-up.\n"]
    cpu_cols = [("system", "system"), ("conns", "conns"), ("rps", "req/s"), ("front", "gateway / HTTP server µs"),
                ("model", "replicas µs"), ("total", "total µs")]
    for conns in (args.connections, args.batch_connections):
        parts.append(f"## {conns} connections\n\n{c.table(comparison_rows(systems, conns), COLS)}\n")
    parts.append("## CPU time per request (µs, all cores; from the processes' CPU counters)\n\n"
                 + c.table(cpu_rows(systems), cpu_cols) + "\n")
    forest = result.get("forest")
    if forest:
        for conns in (args.connections, args.batch_connections):
            parts.append(f"## 100-tree random forest, {conns} connections\n\n"
                         f"{c.table(comparison_rows(forest, conns), COLS)}\n")
        parts.append("## 100-tree random forest: CPU time per request (µs)\n\n"
                     + c.table(cpu_rows(forest), cpu_cols) + "\n")
    if mf.get("fast_paths"):
        parts.append("## Fast path of each deployment\n\n" + c.table(
            [{"endpoint": ep, **fp} for ep, fp in mf["fast_paths"].items()],
            [("endpoint", "endpoint"), ("fast_path_used", "fast path"), ("fast_path_reason", "why")]) + "\n")
    if mf.get("available"):
        mem = mf["memory"]
        rows = [{"process": "server (gateway + control API)", **mem["server"]}]
        if mem.get("zygote"):
            rows.append({"process": "replica zygote (warm parent, forks replicas)", **mem["zygote"]})
        rows += [{"process": f"replica {i + 1}", **m} for i, m in enumerate(mem["replicas"])]
        rows.append({"process": "total", "rss_mb": mem["rss_mb"], "pss_mb": mem["pss_mb"]})
        parts.append("## modelfleet memory (unbatched deployment, after load)\n\n"
                     + c.table(rows, [("process", "process"), ("rss_mb", "RSS MiB"), ("uss_mb", "USS MiB"),
                                      ("pss_mb", "PSS MiB")]) + "\n")
        fa_low = systems.get("fastapi", {}).get("low_concurrency", {})
        rows = [{"conns": n, "mf": r["p50_ms"], "fa": fa_low.get(n, {}).get("p50_ms"),
                 "added": r["p50_ms"] - fa_low[n]["p50_ms"] if n in fa_low else None,
                 "mf99": r["p99_ms"], "fa99": fa_low.get(n, {}).get("p99_ms"),
                 "mfr": r["rps"], "far": fa_low.get(n, {}).get("rps")}
                for n, r in sorted(mf["low_concurrency"].items())]
        parts.append("## Gateway overhead: low concurrency\n\n" + c.table(rows, [
            ("conns", "conns"), ("mf", "modelfleet p50 ms"), ("fa", "FastAPI p50 ms"), ("added", "added ms"),
            ("mf99", "modelfleet p99 ms"), ("fa99", "FastAPI p99 ms"), ("mfr", "modelfleet req/s"),
            ("far", "FastAPI req/s")]) + "\n")
        rows = []
        for key, how in (("ready", "forked from the warm zygote (default)"),
                         ("ready_cold", "fresh interpreter (deployment sets OMP_NUM_THREADS)")):
            rd = mf.get(key)
            if rd:
                rows.append({"how": how, "median": 1000 * rd["median_s"],
                             "runs": ", ".join(f"{1000 * t:.0f}" for t in rd["runs_s"]),
                             "init": ", ".join(str(x) for x in rd["replica_init_ms"])})
        parts.append("## Deployment create -> ready (SDK call until it returns ready)\n\n" + c.table(rows, [
            ("how", "replica start"), ("median", "median ms"), ("runs", "runs ms"),
            ("init", "replica's own import + load ms")]) + "\n")
    so = mf.get("switch_over") if mf.get("available") else None
    if so:
        rows = []
        for i, u in enumerate(so["updates"]):
            for phase in ("before", "during"):
                rows.append({"update": f"{i + 1} ({u['update_s']:.2f} s)", "phase": phase, **u[phase]})
        parts.append(f"## Rolling update under load ({so['connections']} connections, iris:1 <-> iris:2)\n\n"
                     f"\"during\" = from the update call until {so['settle_s']:.0f} s after it returned; \"before\" = "
                     f"the steady state just before the call. Errors over the whole run: {so['errors_total']}.\n\n"
                     + c.table(rows, [("update", "update (took)"), ("phase", "phase"), ("requests", "requests"),
                                      ("rps", "req/s"), ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"),
                                      ("max_ms", "max ms"), ("errors", "errors")]) + "\n")
    if result.get("ratios_by_round"):
        parts.append(f"## x FastAPI, round by round ({args.rounds} paired rounds)\n\n" + c.table(
            [{"what": k, "ratios": ", ".join(f"{r}" for r in v)} for k, v in result["ratios_by_round"].items() if v],
            [("what", "modelfleet run, connections"), ("ratios", "x FastAPI in each round")]) + "\n")
    parts.append("## Targets\n\n" + c.table(
        [{**t, "met": "met" if t["met"] else "NOT met"} for t in result["targets"]],
        [("target", "target"), ("measured", "measured"), ("met", "")]) + "\n")
    return "\n".join(parts)


def one_round(args, work: Path, model_dir: Path, model_v2_dir: Path, model: Path, forest: Path | None,
              n: int) -> tuple[dict, dict]:
    """Every system once, on the iris pipeline, then the peers on the forest (modelfleet's forest
    runs come with its own): ({system: result}, {system: result on the forest})."""
    runners = {"modelfleet": lambda: bench_modelfleet(args, work, model_dir, model_v2_dir,
                                                      forest.parent if forest else None, with_extras=n == 0),
               "fastapi": lambda: bench_fastapi(args, work, model),
               "mlflow": lambda: bench_mlflow(args, work, model),
               "ray": lambda: bench_ray(args, work, model),
               "bentoml": lambda: bench_bentoml(args, work, model)}
    systems, on_forest = {}, {}
    peers_now = args.peer_rounds is None or n < args.peer_rounds
    for name in SYSTEMS:
        if name in args.only and (peers_now or name in ("modelfleet", "fastapi")):
            print(f"{name} (round {n + 1} of {args.rounds})", flush=True)
            t = time.monotonic()
            systems[name] = runners[name]()
            systems[name]["bench_s"] = round(time.monotonic() - t, 1)
    if forest is not None:
        on_forest["modelfleet"] = systems.get("modelfleet", {}).pop("forest", {})
        baselines = {"fastapi": bench_fastapi, "mlflow": bench_mlflow, "ray": bench_ray, "bentoml": bench_bentoml}
        for name, bench in baselines.items():
            if name in args.only and (peers_now or name == "fastapi"):
                print(f"{name} (forest, round {n + 1} of {args.rounds})", flush=True)
                (work / "forest").mkdir(exist_ok=True)
                on_forest[name] = bench(args, work / "forest", forest)
    return systems, on_forest


def main(argv=None) -> int:
    args = parse_args(argv)
    removed = c.scrub_blas_overrides()
    started = time.monotonic()
    result = {"machine": c.machine(removed), "config": {k: v for k, v in vars(args).items()},
              "started_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "systems": {}}
    rounds_iris, rounds_forest = [], []
    with tempfile.TemporaryDirectory(prefix="modelfleet-bench-") as tmp:
        work = Path(tmp)
        model_dir, model_v2_dir = work / "iris-v1", work / "iris-v2"
        model = c.train_iris(model_dir)
        c.train_iris(model_v2_dir, C=0.5)
        forest = c.train_forest(work / "forest") if "forest" in args.models else None
        for n in range(args.rounds):
            where = work / f"round-{n + 1}"
            where.mkdir()
            systems, on_forest = one_round(args, where, model_dir, model_v2_dir, model, forest, n)
            rounds_iris.append(systems)
            if on_forest:
                rounds_forest.append(on_forest)
    result["systems"] = rounds.merge(rounds_iris)
    if rounds_forest:
        result["forest"] = rounds.merge(rounds_forest)
    result["rounds"] = {"iris": rounds_iris, "forest": rounds_forest}
    result["ratios_by_round"] = {
        "iris 16": rounds.ratios(rounds_iris, "runs", args.connections),
        "iris batched 64": rounds.ratios(rounds_iris, "batched_runs", args.batch_connections),
        "iris fast_path false 16": rounds.ratios(rounds_iris, "checked_runs", args.connections),
        "forest 16": rounds.ratios(rounds_forest, "runs", args.connections),
        "forest batched 64": rounds.ratios(rounds_forest, "batched_runs", args.batch_connections),
        "forest fast_path false 16": rounds.ratios(rounds_forest, "checked_runs", args.connections)}
    print(f"x FastAPI by round: {result['ratios_by_round']}", flush=True)
    result["targets"] = targets(result["systems"], args.connections, args.batch_connections, result.get("forest"))
    result["total_s"] = round(time.monotonic() - started, 1)
    md = report(result, args)
    c.publish("serving", result, md)
    print(f"in {result['total_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
