"""Where the ONNX converter's memory goes (issue 26): a shared worker's and the zygote's memory
after it serves scikit-learn models on the fast path, and whether the converter (skl2onnx and its
onnx library) is loaded in them.

One workspace server on 127.0.0.1, a fresh store (so each model version is converted), the iris
pipeline and a 100-tree forest deployed shared (the default for no-code models) and invoked once
each. Memory from /proc via psutil: RSS, USS (the process's own pages) and PSS.

    .venv/bin/python bench/converter_memory.py              # about 30 s
    PYTHONPATH=/path/to/other/checkout/src .venv/bin/python bench/converter_memory.py --label before

Writes bench/results/converter_memory[-LABEL].json and .md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import orjson
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as c  # noqa: E402

def converter_loaded(pid: int) -> bool:
    """Whether the process has the converter's native library mapped (onnx's extension, which
    skl2onnx imports; skl2onnx itself is pure Python and maps nothing)."""
    return any("/site-packages/onnx/" in m.path for m in psutil.Process(pid).memory_maps(grouped=True))


def row(role: str, pid: int) -> dict:
    m = psutil.Process(pid).memory_full_info()
    return {"process": role, "pid": pid, "rss_mb": round(m.rss / 2**20, 1), "uss_mb": round(m.uss / 2**20, 1),
            "pss_mb": round(m.pss / 2**20, 1), "converter": "yes" if converter_loaded(pid) else "no"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--label", default="", help="a suffix for the results' names (e.g. before)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="modelfleet-bench-") as tmp:
        for k in ("FLEET_WORKSPACE", "FLEET_DATABASE_URL"):
            os.environ.pop(k, None)
        os.environ["FLEET_HOME"] = str(Path(tmp) / "fleet-home")
        from modelfleet import Fleet
        f = Fleet()
        try:
            f.models.register("iris", c.train_iris(Path(tmp) / "iris").parent, "1")
            f.models.register("forest", c.train_forest(Path(tmp) / "forest").parent, "1")
            body = {"data": [c.IRIS_ROW]}
            paths = {}
            for name in ("iris", "forest"):
                f.online_endpoints.create(name)
                f.online_deployments.create("blue", name, f"{name}:1", all_traffic=True)
                f.online_endpoints.invoke(name, body)
                paths[name] = f.online_deployments.get("blue", name)["fast_path_used"]
            server = f.server.status()["pid"]
            workers = sorted({r["pid"] for name in ("iris", "forest")
                              for r in f.online_deployments.get("blue", name)["replicas"]})
            zygotes = [p.pid for p in psutil.Process(server).children() if p.name() == "mf-zygote"]
            rows = [row("server", server), *[row("zygote", z) for z in zygotes],
                    *[row("shared worker", w) for w in workers]]
        finally:
            c.stop_fleet(f)
    label = f" ({args.label})" if args.label else ""
    md = (f"# Memory with two fast-path models{label}\n\nfast_path_used: "
          + ", ".join(f"{k} {v}" for k, v in paths.items()) + "\n\n"
          + c.table(rows, [("process", "process"), ("rss_mb", "RSS MiB"), ("uss_mb", "USS MiB"),
                           ("pss_mb", "PSS MiB"), ("converter", "converter (onnx) loaded")]) + "\n")
    c.publish("converter_memory" + (f"-{args.label}" if args.label else ""),
              {"machine": c.machine(), "fast_path": paths, "rows": rows}, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
