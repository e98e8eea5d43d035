"""The model call alone: a one-row request's cost inside a replica on each path (issue 26).

In process, no server: the scorer a replica builds for each model (runtime/loaders.py) answers the
same one-row body over and over, with `fast_path` true (ONNX when it verifies), with the ONNX graph
unavailable (scikit-learn unchecked) and false (scikit-learn as before). The time is the best of 5
repeats of N calls: what the replica spends per unbatched request beside its socket.

    .venv/bin/python bench/fast_path.py            # about 1 minute

Writes bench/results/fast_path.json and bench/results/fast_path.md.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as c  # noqa: E402


def per_call_us(fn, n: int) -> float:
    fn()
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t) / n)
    return round(best * 1e6, 1)


def main() -> int:
    from modelfleet.runtime import fast_path, loaders
    body = orjson.dumps({"data": [c.IRIS_ROW]})
    rows = []
    with tempfile.TemporaryDirectory(prefix="modelfleet-bench-") as tmp:
        for i, (name, train) in enumerate((("iris pipeline (StandardScaler + LogisticRegression)", c.train_iris),
                                           ("random forest, 100 trees", c.train_forest))):
            model_dir = Path(tmp) / "models" / f"{i:064x}"   # as the store lays a version out
            train(model_dir / "model")
            cases = [("fast_path: true", True), ("fast_path: false", False)]
            for label, setting in cases:
                scorer = loaders.load_sklearn(model_dir, setting)
                n = 3000 if scorer.fast_path["path"] == "onnx" or "iris" in name else 200
                rows.append({"model": name, "setting": label, "path": scorer.fast_path["path"],
                             "us": per_call_us(lambda: scorer.score([body]), n)})
            # no graph: what a model without a converter (or without onnxruntime) gets
            real = fast_path.onnx_convert.graph_bytes
            fast_path.onnx_convert.graph_bytes = lambda *a: (_ for _ in ()).throw(
                fast_path.onnx_convert.Unsupported("left out for the benchmark"))
            try:
                scorer = loaders.load_sklearn(model_dir, True)
            finally:
                fast_path.onnx_convert.graph_bytes = real
            rows.append({"model": name, "setting": "fast_path: true, no ONNX graph", "path": scorer.fast_path["path"],
                         "us": per_call_us(lambda: scorer.score([body]), 3000 if "iris" in name else 200)})
    for r in rows:
        base = next(x["us"] for x in rows if x["model"] == r["model"] and x["setting"] == "fast_path: false")
        r["x"] = round(base / r["us"], 1)
    md = ("# The model call alone (one row, in process)\n\n" + c.table(rows, [
        ("model", "model"), ("setting", "setting"), ("path", "fast_path_used"), ("us", "µs per one-row score()"),
        ("x", "x cheaper than fast_path: false")]) + "\n")
    c.publish("fast_path", {"machine": c.machine(), "rows": rows}, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
