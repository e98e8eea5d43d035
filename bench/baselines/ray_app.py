"""Ray Serve serving the same scikit-learn model: one replica, POST /score with {"data": rows}.

Runs a local Ray instance sized to this machine, then blocks until SIGTERM, when it shuts Serve
and Ray down so none of their processes outlive it.

    python bench/baselines/ray_app.py --model model.joblib --port 8003
"""

from __future__ import annotations

import argparse
import os
import signal
import threading


def loopback_only() -> None:
    """Run in every Ray worker at start: Ray Serve 2.60 binds each replica's inter-deployment
    gRPC server to [::] (all interfaces) with no setting to change it; bind it to 127.0.0.1.
    Everything else stays on loopback through RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, which the
    benchmark sets."""
    from ray.serve._private import replica
    bind = replica.add_port_to_grpc_server
    replica.add_port_to_grpc_server = lambda server, address: bind(server, address.replace("[::]", "127.0.0.1"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()

    import ray
    from ray import serve
    from starlette.requests import Request

    @serve.deployment(num_replicas=1, max_ongoing_requests=64)
    class Scorer:
        def __init__(self, path: str):
            import joblib
            self.model = joblib.load(path)

        async def __call__(self, request: Request) -> list:
            import numpy as np
            doc = await request.json()
            return self.model.predict(np.asarray(doc["data"], dtype=float)).tolist()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
             runtime_env={"worker_process_setup_hook": loopback_only})
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": args.port})
        serve.run(Scorer.bind(args.model), route_prefix="/score")
        print("ready", flush=True)
        stop.wait()
    finally:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main()
