"""Curated environments: how long Azure's curated environments (curated.py) take to build.

For each catalog entry named here, three builds of the same curated reference, no server:
  cold        uv's cache empty, nothing built: resolve, download, install
  warm cache  a new workspace (nothing built) on the cache the cold build filled: resolve, install
  built       the same workspace again: found built, nothing resolved or installed

    .venv/bin/python bench/curated.py [--entries sklearn-1.5 minimal-py312-inference]

Writes bench/results/curated.json and curated.md. Needs the package index.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as c  # noqa: E402

DEFAULT_ENTRIES = ("sklearn-1.5", "minimal-py312-inference")


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", nargs="+", default=list(DEFAULT_ENTRIES))
    return ap.parse_args(argv)


def build_once(home: Path, cache: Path, ref: str) -> dict:
    """Build `ref` in the default workspace under `home` with uv's cache at `cache`."""
    os.environ["FLEET_HOME"], os.environ["FLEET_UV_CACHE_DIR"] = str(home), str(cache)
    from modelfleet.assets.environments import Environments   # the server's side, in this process
    from modelfleet.schema.workspace import Workspaces
    from modelfleet.store import Database
    ws = Workspaces().get()
    db = Database(ws.db_url)
    try:
        envs = Environments.of_workspace(ws, db)
        started = time.perf_counter()
        prepared = envs.prepare(envs.get(ref))
        seconds = time.perf_counter() - started
    finally:
        db.close()
    return {"seconds": round(seconds, 2), "cached": prepared.cached, "python": prepared.python_version,
            "packages": len(prepared.requirements)}


def main(argv=None) -> None:
    args = parse_args(argv)
    from modelfleet.domain import curated
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-curated-") as tmp:
        for name in args.entries:
            entry = next(e for e in curated.CATALOG if e.name == name)
            ref = f"azureml://registries/azureml/environments/{name}/labels/latest"
            cache = Path(tmp) / f"uv-cache-{name}"
            cold = build_once(Path(tmp) / f"cold-{name}", cache, ref)
            warm = build_once(Path(tmp) / f"warm-{name}", cache, ref)
            built = build_once(Path(tmp) / f"warm-{name}", cache, ref)
            rows.append({"entry": name, "ref": entry.ref, "python": cold["python"], "packages": cold["packages"],
                         "cold_s": cold["seconds"], "warm_cache_s": warm["seconds"], "built_s": built["seconds"],
                         "built_cached": built["cached"]})
            print(f"{name}: cold {cold['seconds']} s, warm cache {warm['seconds']} s, built {built['seconds']} s",
                  flush=True)
    table = ["| curated environment | Python | packages | cold s | warm cache s | built s |",
             "|---|---|---|---|---|---|"]
    table += [f"| {r['entry']} ({r['ref']}) | {r['python']} | {r['packages']} | {r['cold_s']} | "
              f"{r['warm_cache_s']} | {r['built_s']} |" for r in rows]
    print("\n".join(table))
    c.RESULTS.mkdir(parents=True, exist_ok=True)
    (c.RESULTS / "curated.json").write_bytes(orjson.dumps({"machine": c.machine(), "rows": rows},
                                                          option=orjson.OPT_INDENT_2))
    (c.RESULTS / "curated.md").write_text("\n".join(table) + "\n")


if __name__ == "__main__":
    main()
