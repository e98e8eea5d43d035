"""Registry benchmark: 1,000 registrations through the SDK, then list and show at 10,000 versions.

Every version is a real registration through modelfleet's Registry (files copied into the
content-addressed store, a row written), in a throw-away FLEET_HOME:

  1. 1,000 versions of model `big` through `Fleet().models.register` with automatic version
     numbers, timed one by one (the version number scan grows with the model's versions);
  2. 9,000 more, 100 versions each of `m00`..`m89`, through `Registry.register` with explicit
     versions (the same code path, without the SDK wrapper);
  3. timings at 10,000 versions: SDK list / list --name / get, and the CLI as a subprocess.

    .venv/bin/python bench/registry.py [--versions 10000] [--first 1000]

Writes bench/results/registry.json and registry.md. The aim: list and show under 0.2 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as c  # noqa: E402

AIM_S = 0.2


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--first", type=int, default=1000, help="versions registered through the SDK")
    ap.add_argument("--versions", type=int, default=10000, help="total versions in the registry")
    ap.add_argument("--per-model", type=int, default=100, help="versions per model after the first phase")
    ap.add_argument("--repeat", type=int, default=7, help="repetitions of each list/show timing")
    return ap.parse_args(argv)


def model_dir(root: Path, i: int) -> Path:
    """A small, distinct sklearn-type model: one joblib file of a few hundred bytes."""
    import joblib
    d = root / f"v{i}"
    d.mkdir(parents=True, exist_ok=True)
    joblib.dump({"coef": [i * 0.001, 1.0, 2.0, 3.0], "intercept": i}, d / "model.joblib")
    return d


def register_sdk(fleet, src: Path, n: int) -> dict:
    per = []
    t0 = time.perf_counter()
    for i in range(n):
        d = model_dir(src, i)
        t = time.perf_counter()
        fleet.models.register("big", d)
        per.append(time.perf_counter() - t)
    total = time.perf_counter() - t0
    k = max(1, n // 10)
    return {"versions": n, "total_s": round(total, 2), "per_version_ms": round(1000 * statistics.fmean(per), 2),
            "first_10pct_ms": round(1000 * statistics.fmean(per[:k]), 2),
            "last_10pct_ms": round(1000 * statistics.fmean(per[-k:]), 2),
            "rate_per_s": round(n / total, 1)}


def register_bulk(fleet, src: Path, n: int, per_model: int) -> dict:
    """The server's own registry on the workspace's store (in this process, next to the running
    server): what registering costs without HTTP, and a quick way to fill the registry."""
    from modelfleet.assets.models import Registry
    from modelfleet.store import ArtifactStore, Database
    registry = Registry(Database(fleet.workspace.db_url), ArtifactStore(fleet.workspace.artifacts))
    t0 = time.perf_counter()
    for i in range(n):
        d = model_dir(src, 100_000 + i)
        registry.register(f"m{i // per_model:02d}", d, str(i % per_model + 1))
    total = time.perf_counter() - t0
    return {"versions": n, "total_s": round(total, 2), "per_version_ms": round(1000 * total / n, 2),
            "rate_per_s": round(n / total, 1)}


def timed(fn, repeat: int) -> dict:
    times, rows = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
        rows = len(out) if isinstance(out, list) else 1
    return {**spread(times), "rows": rows}


def spread(times: list[float]) -> dict:
    return {"median_ms": round(1000 * statistics.median(times), 2), "min_ms": round(1000 * min(times), 2),
            "max_ms": round(1000 * max(times), 2)}


def probes(args) -> tuple[str, str]:
    """A version in the middle of `big`, and a model in the middle of the bulk ones."""
    n_bulk = max(1, (args.versions - args.first) // args.per_model)
    return str(max(1, args.first // 2)), f"m{n_bulk // 2:02d}"


def sdk_timings(args) -> list[dict]:
    from modelfleet import Fleet
    fleet = Fleet()
    fleet.models.label("big", "1", "champion")
    mid, mm = probes(args)
    ops = [
        ("SDK models.list()  (all versions)", lambda: fleet.models.list()),
        (f"SDK models.list('big')  ({args.first:,} versions)", lambda: fleet.models.list("big")),
        (f"SDK models.list('{mm}')  ({args.per_model} versions)", lambda: fleet.models.list(mm)),
        (f"SDK models.get('big', version='{mid}')", lambda: fleet.models.get("big", mid)),
        ("SDK models.get('big')  (big@latest)", lambda: fleet.models.get("big")),
        (f"SDK models.get('{mm}', label='latest')", lambda: fleet.models.get(mm, label="latest")),
        ("SDK models.get('big', label='champion')", lambda: fleet.models.get("big", label="champion")),
    ]
    out = [{"op": name, **timed(fn, args.repeat)} for name, fn in ops]

    def cold_list():  # a new process's first call: engine, connection, schema check, then the query
        with Fleet() as f:
            return f.models.list()
    out.append({"op": "SDK Fleet() + models.list()  (fresh client)", **timed(cold_list, args.repeat)})
    fleet.close()
    return out


def cli_timings(args) -> list[dict]:
    fleet_cli = str(Path(c.PYTHON).parent / "fleet")
    mid, mm = probes(args)
    repeat = args.repeat
    env = c.clean_env()
    cmds = [
        ("python -c pass  (interpreter start, for reference)", [c.PYTHON, "-c", "pass"]),
        ("fleet --help  (CLI start, for reference)", [fleet_cli, "--help"]),
        ("fleet model list -o json", [fleet_cli, "model", "list", "-o", "json"]),
        (f"fleet model list -n {mm} -o json", [fleet_cli, "model", "list", "-n", mm, "-o", "json"]),
        (f"fleet model show -n big -v {mid} -o json", [fleet_cli, "model", "show", "-n", "big", "-v", mid,
                                                      "-o", "json"]),
        ("fleet model show -n big -l latest -o json", [fleet_cli, "model", "show", "-n", "big", "-l", "latest",
                                                       "-o", "json"]),
        ("fleet model list -o table", [fleet_cli, "model", "list", "-o", "table"]),  # piped, the default is json
        (f"fleet model list -n {mm} -o table", [fleet_cli, "model", "list", "-n", mm, "-o", "table"]),
    ]
    out = []
    for name, cmd in cmds:
        times, size = [], 0
        for _ in range(repeat if "(table)" not in name or "-n" in cmd else max(1, repeat // 3)):
            t = time.perf_counter()
            r = subprocess.run(cmd, capture_output=True, env={**env, "COLUMNS": "200"})
            times.append(time.perf_counter() - t)
            if r.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd)} failed: {r.stderr.decode()[-300:]}")
            size = len(r.stdout)
        out.append({"op": name, **spread(times), "output_bytes": size})
    return out


def verdict(row: dict) -> str:
    if "reference" in row["op"]:
        return ""
    return "met" if row["median_ms"] < AIM_S * 1000 else "NOT met"


def report(res: dict) -> str:
    m = res["machine"]
    reg = [{"phase": f"{res['first']['versions']:,} via SDK register (auto version)", **res["first"]},
           {"phase": f"{res['bulk']['versions']:,} via Registry.register (explicit version)", **res["bulk"]}]
    parts = [f"# Registry benchmark\n\n{m['nproc']} cores, {m['cpu_model']}, Python {m['python']}; "
             f"{res['total_versions']:,} versions in {res['models']} models; SQLite at {res['db_mb']} MiB.\n",
             "## Registration\n\n" + c.table(reg, [
                 ("phase", "phase"), ("total_s", "total s"), ("rate_per_s", "versions/s"),
                 ("per_version_ms", "mean ms"), ("first_10pct_ms", "first 10% ms"),
                 ("last_10pct_ms", "last 10% ms")]) + "\n"]
    rows = [{**r, "aim": verdict(r)} for r in res["sdk"] + res["cli"]]
    parts.append(f"## List and show at {res['total_versions']:,} versions (median of {res['repeat']}; "
                 f"aim < {AIM_S} s)\n\n" + c.table(rows, [
                     ("op", "operation"), ("median_ms", "median ms"), ("min_ms", "min ms"),
                     ("max_ms", "max ms"), ("rows", "rows"), ("aim", "aim")]) + "\n")
    return "\n".join(parts)


def main(argv=None) -> int:
    args = parse_args(argv)
    removed = c.scrub_blas_overrides()
    res = {"machine": c.machine(removed), "started_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "repeat": args.repeat}
    with tempfile.TemporaryDirectory(prefix="modelfleet-bench-registry-") as tmp:
        work = Path(tmp)
        for k in ("FLEET_WORKSPACE", "FLEET_DATABASE_URL"):
            os.environ.pop(k, None)
        os.environ["FLEET_HOME"] = str(work / "home")
        from modelfleet import Fleet
        with Fleet() as fleet:
            print(f"registering {args.first:,} versions through the SDK ...", flush=True)
            res["first"] = register_sdk(fleet, work / "src", args.first)
            print(f"  {res['first']}", flush=True)
            rest = args.versions - args.first
            print(f"registering {rest:,} more through Registry.register ...", flush=True)
            res["bulk"] = register_bulk(fleet, work / "src", rest, args.per_model)
            print(f"  {res['bulk']}", flush=True)
            res["total_versions"] = len(fleet.models.list())
            res["models"] = len({m.name for m in fleet.models.list()})
            res["db_mb"] = round(fleet.workspace.db_path.stat().st_size / 2**20, 1)
            try:
                print("timing list and show ...", flush=True)
                res["sdk"] = sdk_timings(args)
                res["cli"] = cli_timings(args)
            finally:
                fleet.server.stop()
    md = report(res)
    c.publish("registry", res, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
