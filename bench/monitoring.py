"""Model monitoring: what collection costs the request path, and how long monitoring a fleet takes.

  1. Collection at sampling_rate 1.0: two deployments of the same iris model on one endpoint, one
     collecting model_inputs and model_outputs, one not, under the same load (targeted by
     header), alternated in pairs; req/s and p99 side by side, and every collected row written.
  2. A thousand deployments' daily windows (24 hourly Parquet files each) checked by a thousand
     daily monitors (data drift on every feature, data quality), run one after the other as the
     server's scheduler runs them: the time against the one-day schedule interval.

    .venv/bin/python bench/monitoring.py [--duration 10] [--pairs 3] [--deployments 1000]

Writes bench/results/monitoring.json and monitoring.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as c  # noqa: E402

BODY = orjson.dumps({"data": [c.IRIS_ROW]})
FEATURES = ["f0", "f1", "f2", "f3"]
# the server's collection writer: collection/writer.py's loop, started as datastores/collected.py
WRITER_MODULES = ("modelfleet.collection.writer", "modelfleet.datastores.collected")


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=10.0, help="measured seconds per run")
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--pairs", type=int, default=3, help="runs of each deployment, alternated")
    ap.add_argument("--deployments", type=int, default=1000, help="monitored deployments (part 2)")
    ap.add_argument("--rows", type=int, default=2400, help="rows per deployment per day (part 2)")
    ap.add_argument("--only", default="writer,collection,monitors")
    ap.add_argument("--report-only", action="store_true", help="render bench/results/monitoring.json again")
    return ap.parse_args(argv)


# -- 1. the cost of collection ------------------------------------------------------------------

def collection_cost(args, work: Path) -> dict:
    from modelfleet import Fleet
    os.environ["FLEET_HOME"] = str(work / "home")
    fleet = Fleet()
    try:
        fleet.models.register("iris", c.train_iris(work / "iris").parent, "1")
        fleet.online_endpoints.create("mon-ep")
        fleet.online_deployments.create("plain", "mon-ep", "iris:1", all_traffic=True)
        fleet.online_deployments.create("collect", "mon-ep", "iris:1", data_collector={
            "collections": {"model_inputs": {"enabled": True}, "model_outputs": {"enabled": True}},
            "sampling_rate": 1.0})
        ep = fleet.online_endpoints.get("mon-ep")
        key = fleet.online_endpoints.get_keys("mon-ep")["primaryKey"]
        base, path = re.match(r"(http://[^/]+)(/.*)", ep["scoring_uri"]).groups()
        server = fleet.server.status()["pid"]
        runs = []
        for i in range(args.pairs):
            for name in ("plain", "collect"):
                print(f"  {name} (pair {i + 1})", flush=True)
                # read again each run: the collection writer starts with the first collected batch
                procs = c.tree(server)
                writer = [p.pid for p in procs if any(m in " ".join(_cmdline(p)) for m in WRITER_MODULES)]
                pids, groups = [p.pid for p in procs], {"server": [server], "writer": writer}
                target = (path, BODY, {"Content-Type": "application/json", "Authorization": f"Bearer {key}",
                                       "azureml-model-deployment": name})
                runs.append({"deployment": name, "pair": i + 1,
                             **c.measure(base, [target], args.connections, args.duration, args.warmup, pids, groups)})
        return {"runs": runs, "collected": _collected_rows(fleet)}
    finally:
        c.stop_fleet(fleet)


def _cmdline(proc) -> list[str]:
    try:
        return proc.cmdline()
    except Exception:   # gone meanwhile, or not ours to read
        return []


def _collected_rows(fleet, settle_s: float = 10.0) -> dict:
    """Rows written and dropped, from /metrics, once the writer has caught up."""
    from prometheus_client.parser import text_string_to_metric_families
    url = fleet.server.status()["url"]
    deadline, last = time.monotonic() + settle_s, None
    while time.monotonic() < deadline:
        out = {"rows": {}, "dropped": {}, "answered": 0}
        for fam in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
            for s in fam.samples:
                if s.name == "modelfleet_requests_total" and s.labels.get("deployment") == "collect" \
                        and s.labels.get("code") == "200":
                    out["answered"] = int(s.value)
                elif s.name == "modelfleet_collected_rows_total":
                    out["rows"][s.labels["collection"]] = int(s.value)
                elif s.name == "modelfleet_collection_dropped_total":
                    out["dropped"][s.labels["reason"]] = int(s.value)
        if out == last:
            return out
        last = out
        time.sleep(1.0)
    return last


def writer_cost(work: Path, requests: int = 20000) -> list[dict]:
    """In process: CPU per collected request of the request path's append, of the server's feed
    (the entries packed and pickled into the writer's frame) and of the writer process's work
    (bodies -> columns -> Parquet, as its loop runs it), by how many requests one flush finds."""
    import gc
    import pickle
    from modelfleet.collection.columns import write_packed
    from modelfleet.collection.payload import PayloadCollector, PayloadSink
    names = {"inputs": [{"name": f"f{i}", "shape": [-1]} for i in range(4)], "outputs": [{"name": "predict", "shape": [-1]}]}
    sink = PayloadSink(work, "ep", "blue", capacity=requests)
    collector = PayloadCollector(sink, {"model_inputs": 1.0, "model_outputs": 1.0}, [])
    collector.offer("warm-up", BODY, b"[0]", names, {})
    write_packed(sink, sink.pack(sink.drain()), "warm-up")   # imports pyarrow
    out = []
    for batch in (100, 1000, 5000):
        t = time.process_time()
        for i in range(requests):
            collector.offer(f"r{i}", BODY, b"[0]", names, {})
        offer_us = (time.process_time() - t) / requests * 1e6
        t = time.process_time()
        frames, entries = [], sink.drain()
        for k in range(0, requests, batch):
            frames.append(pickle.dumps({"sinks": [("ep", "blue", "hour", 30, sink.pack(entries[k:k + batch]))]},
                                       pickle.HIGHEST_PROTOCOL))
        feed_us = (time.process_time() - t) / requests * 1e6
        t = time.process_time()
        for k, frame in enumerate(frames):
            gc.disable()
            try:
                write_packed(sink, pickle.loads(frame)["sinks"][0][4], f"{batch}-{k}")
            finally:
                gc.enable()
        out.append({"batch": batch, "offer_us": round(offer_us, 2), "feed_us": round(feed_us, 2),
                    "writer_us": round((time.process_time() - t) / requests * 1e6, 1)})
    return out


# -- 2. monitoring a thousand deployments ---------------------------------------------------------

def monitors(args, work: Path) -> dict:
    from modelfleet.monitoring.data_assets import DataAssets
    from modelfleet.monitoring.scheduler import Monitoring, first_run
    from modelfleet.collection.sink import write_parquet
    from modelfleet.schema.monitoring import DataAssetSpec, MonitorScheduleSpec
    from modelfleet.schema.validation import validate
    from modelfleet.store import ArtifactStore, Database
    from modelfleet.store.monitoring import ScheduleStore
    from modelfleet.collection.windows import collection_dir
    root = work / "ws"
    db = Database(f"sqlite:///{root / 'workspace.db'}")
    assets = DataAssets(db, ArtifactStore(root / "artifacts"), root)
    rng = np.random.default_rng(0)
    ref = work / "reference.csv"
    ref.write_text(",".join(FEATURES) + "\n" + "\n".join(",".join(f"{v:.6f}" for v in row)
                                                         for row in rng.normal(0, 1, (2000, len(FEATURES)))) + "\n")
    assets.create(DataAssetSpec(name="reference", version="1", type="uri_file", path=str(ref)))
    day = dt.datetime.now(dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    t = time.perf_counter()
    per_hour = args.rows // 24
    for i in range(args.deployments):
        folder = collection_dir(root, f"ep-{i:04d}", "blue", "model_inputs")
        data = rng.normal(0.5 if i % 10 == 0 else 0.0, 1.0, (per_hour * 24, len(FEATURES)))
        for h in range(24):
            start = (day + dt.timedelta(hours=h)).timestamp()
            rows = [{"correlationid": f"r{h}-{k}", "time": start + k, **dict(zip(FEATURES, map(float, v)))}
                    for k, v in enumerate(data[h * per_hour:(h + 1) * per_hour])]
            write_parquet(folder / day.strftime("%Y/%m/%d") / f"{h:02d}", rows, str(h))
    written_s = time.perf_counter() - t
    schedules = ScheduleStore(db)
    for i in range(args.deployments):
        spec = validate(MonitorScheduleSpec, {
            "name": f"mon-{i:04d}", "trigger": {"type": "recurrence", "frequency": "day", "interval": 1},
            "create_monitor": {"monitoring_target": {"endpoint_deployment_id": f"azureml:ep-{i:04d}:blue"},
                               "monitoring_signals": {
                                   "drift": {"type": "data_drift",
                                             "reference_data": {"input_data": {"path": "azureml:reference:1"}},
                                             "production_data": {"data_window": {"lookback_window_size": "P1D",
                                                                                 "lookback_window_offset": "P0D"}},
                                             "metric_thresholds": {"numerical": {
                                                 "jensen_shannon_distance": 0.1,
                                                 "normalized_wasserstein_distance": 0.2,
                                                 "population_stability_index": 0.2}}},
                                   "quality": {"type": "data_quality",
                                               "reference_data": {"input_data": {"path": "azureml:reference:1"}}}}}})
        schedules.put(spec.name, spec.data(), first_run(spec))
    monitoring = Monitoring(schedules, assets, root)
    now = day + dt.timedelta(days=1)
    times, breached = [], 0
    t = time.perf_counter()
    for i in range(args.deployments):
        t0 = time.perf_counter()
        run = monitoring.run_now(f"mon-{i:04d}", now)
        times.append(time.perf_counter() - t0)
        breached += run["status"] == "breached"
        assert run["status"] != "failed", run["error"]
    total = time.perf_counter() - t
    db.close()
    return {"deployments": args.deployments, "rows_per_deployment": per_hour * 24, "files_per_deployment": 24,
            "write_s": round(written_s, 1), "total_s": round(total, 1),
            "per_monitor_ms": {"p50": round(1000 * float(np.median(times)), 1),
                               "p99": round(1000 * float(np.quantile(times, 0.99)), 1)},
            "interval_s": 86400, "pct_of_interval": round(100 * total / 86400, 2),
            "breached": breached, "shifted": len(range(0, args.deployments, 10))}


# -- report ---------------------------------------------------------------------------------------

def report(res: dict, args) -> str:
    m = res["machine"]
    out = [f"# Monitoring\n\n{m['nproc']} cores, {m['cpu_model']}, Python {m['python']}; load: {m['load_generator']}."
           + "".join(f" The {part} figures are from the run of {when}." for part, when in res.get("kept_from", {}).items())]
    if "collection" in res:
        col = res["collection"]
        rows = col["runs"]
        by = {name: [r for r in rows if r["deployment"] == name] for name in ("plain", "collect")}
        for r in rows:
            r["server_cpu_us"] = r["cpu_us_per_request"].get("server")
            r["writer_cpu_us"] = r["cpu_us_per_request"].get("writer") or 0
        keys = ("rps", "p50_ms", "p99_ms", "server_cpu_us", "writer_cpu_us")
        med = {name: {k: c.median_of([r[k] for r in rs]) for k in keys} for name, rs in by.items()}
        summary = [{"deployment": n, **med[n], "errors": sum(r["errors"] for r in by[n])} for n in ("plain", "collect")]
        ratio = {"rps": med["collect"]["rps"] / med["plain"]["rps"], "p99": med["collect"]["p99_ms"] / med["plain"]["p99_ms"]}
        col["ratio"] = {k: round(v, 3) for k, v in ratio.items()}
        out.append(f"## Collection at sampling_rate 1.0\n\n{args.connections} connections, {args.duration:.0f} s "
                   f"per run, {args.pairs} runs of each deployment alternated (medians):\n\n"
                   + c.table(summary, [("deployment", "deployment"), ("rps", "req/s"), ("p50_ms", "p50 ms"),
                                       ("p99_ms", "p99 ms"), ("server_cpu_us", "server CPU µs/req"),
                                       ("writer_cpu_us", "writer CPU µs/req"), ("errors", "errors")])
                   + f"\n\ncollecting / plain: req/s x{ratio['rps']:.3f}, p99 x{ratio['p99']:.3f}. Rows written "
                   f"{col['collected']['rows']} for {col['collected']['answered']:,} requests `collect` answered "
                   f"(warm-up runs included); dropped {col['collected']['dropped'] or 'none'}.\n\n"
                   + c.table(rows, [("deployment", "deployment"), ("pair", "run"), ("rps", "req/s"),
                                    ("p99_ms", "p99 ms"), ("server_cpu_us", "server CPU µs/req"),
                                    ("writer_cpu_us", "writer CPU µs/req"), ("foreign_cpu_pct", "other work % CPU")]))
    if "writer" in res:
        out.append("CPU per collected request (model_inputs and model_outputs), in process: the request path's "
                   "append and the feed (drained, packed and pickled into the writer's frame), both in the server, "
                   "and the writer process's work (parsing, columns, Parquet), by how many requests one flush finds:\n\n"
                   + c.table(res["writer"], [("batch", "requests per flush"), ("offer_us", "append µs"),
                                             ("feed_us", "feed µs"), ("writer_us", "writer µs")]))
    if "monitors" in res:
        mon = res["monitors"]
        out.append(f"## A thousand daily monitors\n\n{mon['deployments']:,} deployments, each a day of "
                   f"{mon['rows_per_deployment']:,} collected rows in {mon['files_per_deployment']} hourly Parquet "
                   f"files; each monitor: data drift (3 metrics) and data quality (3 metrics) on 4 features "
                   f"against a 2,000-row reference, run one after the other:\n\n"
                   + c.table([mon], [("total_s", "all monitors, s"), ("pct_of_interval", "% of the 1-day interval"),
                                     ("breached", "breached"), ("shifted", "deployments shifted")])
                   + f"\n\nper monitor: p50 {mon['per_monitor_ms']['p50']} ms, p99 {mon['per_monitor_ms']['p99']} ms "
                   f"(writing the data took {mon['write_s']} s).")
    return "\n\n".join(out) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.report_only:
        res = orjson.loads((c.RESULTS / "monitoring.json").read_bytes())
        c.publish("monitoring", res, report(res, args))
        return 0
    removed = c.scrub_blas_overrides()
    res = {"machine": c.machine(removed), "started_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    for k in ("FLEET_WORKSPACE", "FLEET_DATABASE_URL"):
        os.environ.pop(k, None)
    with tempfile.TemporaryDirectory(prefix="modelfleet-bench-monitoring-") as tmp:
        if "writer" in args.only:
            res["writer"] = writer_cost(Path(tmp) / "writer")
        if "collection" in args.only:
            print("collection at sampling_rate 1.0", flush=True)
            res["collection"] = collection_cost(args, Path(tmp) / "collection")
        if "monitors" in args.only:
            print(f"{args.deployments} monitors", flush=True)
            res["monitors"] = monitors(args, Path(tmp) / "monitors")
    earlier = c.RESULTS / "monitoring.json"
    if earlier.exists():   # the parts not run this time are kept from the last run, and said to be
        old = orjson.loads(earlier.read_bytes())
        for part in ("writer", "collection", "monitors"):
            if part not in res and part in old:
                res[part] = old[part]
                res.setdefault("kept_from", {})[part] = old.get("kept_from", {}).get(part, old["started_at"])
    md = report(res, args)
    c.publish("monitoring", res, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
