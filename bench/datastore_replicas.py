"""Ray replica cold start by where the model comes from: the server's copy shipped through Ray's
object store (the workspace's own folder as its datastore), against each node reading the
workspace's Azure Blob datastore (Azurite on 127.0.0.1) into its node cache, empty and warm.

One workspace server with an owned one-node Ray compute on 127.0.0.1. Each run registers a
model of its own (the iris pipeline and N MiB of incompressible weights beside it, so no run
finds another's bytes anywhere), creates a deployment of it with one replica on the Ray compute
and times create -> ready; the datastore runs then create a second deployment of the same
model (its node cache holds it now). The two paths alternate run by run.

    .venv/bin/python bench/datastore_replicas.py [--size-mib 256] [--runs 3]

Writes bench/results/datastore_replicas.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # tests/azurite.py: one way to run Azurite

import common as c  # noqa: E402
from tests.azurite import ACCOUNT, KEY, Azurite, model_file  # noqa: E402

MiB = 1 << 20
COMPUTE = "raybench"
STORE = "bench_store"
LOCAL = "workspaceartifactstore"


def deploy_seconds(fleet, endpoint: str, model: str) -> float:
    """create -> ready of one replica of `model` on the Ray compute, in a new endpoint (its
    deployment named after it: a replica id is unique within its endpoint only)."""
    fleet.online_endpoints.create(endpoint, compute=COMPUTE)
    t = time.perf_counter()
    dep = fleet.online_deployments.create(endpoint, endpoint, model)
    took = time.perf_counter() - t
    assert dep["provisioning_state"] == "Succeeded", dep
    return took


def fetched(fleet, endpoint: str) -> str:
    logs = fleet.online_deployments.get_logs(endpoint, endpoint, lines=50)
    return next((line.split("model ", 1)[1] for line in logs.splitlines() if "datastore" in line), "object store")


def run(fleet, tmp: Path, size: int, runs: int) -> dict:
    samples: dict[str, list[float]] = {"object_store": [], "datastore_cold": [], "datastore_warm": []}
    notes: list[str] = []
    for i in range(runs):
        for path in (("object_store", "datastore") if i % 2 == 0 else ("datastore", "object_store")):
            folder = tmp / f"{path}-{i}" / "m"
            c.train_iris(folder)
            model_file(folder / "weights.bin", size)
            fleet.datastores.set_default(STORE if path == "datastore" else LOCAL)
            model = fleet.models.register(f"{path.replace('_', '-')}-{i}", folder, "1")
            if path == "object_store":
                samples["object_store"].append(deploy_seconds(fleet, f"os-{i}", model.ref))
                fleet.online_endpoints.delete(f"os-{i}")
                continue
            samples["datastore_cold"].append(deploy_seconds(fleet, f"cold-{i}", model.ref))
            notes.append(fetched(fleet, f"cold-{i}"))
            samples["datastore_warm"].append(deploy_seconds(fleet, f"warm-{i}", model.ref))
            notes.append(fetched(fleet, f"warm-{i}"))
            for ep in (f"cold-{i}", f"warm-{i}"):
                fleet.online_endpoints.delete(ep)
    return {"medians": {k: c.median_of(v) for k, v in samples.items()}, "samples": samples, "notes": notes}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    removed = c.scrub_blas_overrides()
    with tempfile.TemporaryDirectory(prefix="fleet-bench-dsr-") as tmp:
        tmp = Path(tmp)
        os.environ.update(FLEET_HOME=str(tmp / "home"), FLEET_NODE_CACHE=str(tmp / "node-cache"))
        azurite = Azurite(tmp / "azurite").start()
        from modelfleet import Fleet
        from modelfleet.backends.ray import cluster as ray_cluster
        fleet = Fleet()
        temp_dir = None
        try:
            fleet.computes.create(COMPUTE, num_cpus=2)
            temp_dir = fleet.computes.show(COMPUTE)["temp_dir"]
            fleet.datastores.create({"name": STORE, "type": "azure_blob", "account_name": ACCOUNT,
                                     "container_name": "workspace", "account_url": azurite.url,
                                     "credentials": {"account_key": KEY}}, default=True)
            results = run(fleet, tmp, args.size_mib * MiB, args.runs)
        finally:
            c.stop_fleet(fleet)
            if temp_dir:
                ray_cluster.stop_local(temp_dir)
            azurite.stop()
    m = results["medians"]
    rows = [{"case": "the server's copy through Ray's object store", "s": m["object_store"],
             "ratio": m["object_store"] / m["datastore_warm"]},
            {"case": "the node reads the datastore, empty node cache", "s": m["datastore_cold"],
             "ratio": m["datastore_cold"] / m["datastore_warm"]},
            {"case": "the node's cache holds the model (nothing remote)", "s": m["datastore_warm"], "ratio": 1.0}]
    md = (f"Ray replica create -> ready, a {args.size_mib} MiB model, one-node Ray compute and Azurite on "
          f"127.0.0.1, median of {args.runs}\n\n"
          + c.table(rows, [("case", "where the model comes from"), ("s", "create -> ready s"),
                           ("ratio", "/ warm node cache")]) + "\n")
    c.publish("datastore_replicas", {"machine": c.machine(removed), "size_bytes": args.size_mib * MiB,
                                     "runs": args.runs, "rows": rows, **results}, md)


if __name__ == "__main__":
    main()
