"""Ray Serve model multiplexing: one deployment, many scikit-learn models, chosen per request.

One Serve deployment with `--replicas` replicas; each loads a model on its first request, by
model id (the `serve_multiplexed_model_id` request header: a folder name under `--models`,
holding model.joblib), and keeps the `--capacity` most recently used ones (Serve's
`@serve.multiplexed(max_num_models_per_replica=...)`). Serve's proxy routes a request to a replica
that already holds its model when there is one. POST /score with {"data": rows}; a request
without the header answers {"ready": true} (the benchmark's readiness probe).

    python bench/baselines/ray_multiplex.py --models DIR --capacity 1000 --port 8004 [--replicas 2]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ray_app import predict, serve_until_terminated


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", required=True, help="a folder with one subfolder (the model id) per model")
    ap.add_argument("--capacity", type=int, required=True, help="models kept per replica (max_num_models_per_replica)")
    ap.add_argument("--replicas", type=int, default=2)
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()

    from ray import serve
    from starlette.requests import Request

    # a CPU each when there are as many cores as replicas: all of them fit on this one node
    cpus = min(1.0, (os.cpu_count() or 1) / args.replicas)

    @serve.deployment(num_replicas=args.replicas, max_ongoing_requests=64, ray_actor_options={"num_cpus": cpus})
    class Multiplexed:
        def __init__(self, root: str):
            self.root = Path(root)

        @serve.multiplexed(max_num_models_per_replica=args.capacity)
        async def model(self, model_id: str):
            import joblib
            path = self.root / model_id / "model.joblib"
            if Path(model_id).name != model_id or not path.is_file():
                raise ValueError(f"no model {model_id!r} under {self.root}")
            return joblib.load(path)

        async def __call__(self, request: Request):
            model_id = serve.get_multiplexed_model_id()
            if not model_id:
                return {"ready": True}
            return predict(await self.model(model_id), await request.json())

    serve_until_terminated(Multiplexed.bind(args.models), args.port)


if __name__ == "__main__":
    main()
