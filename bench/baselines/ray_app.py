"""Ray Serve serving the same scikit-learn model: one replica, POST /score with {"data": rows}.

Runs a local Ray instance sized to this machine, then blocks until SIGTERM, when it shuts Serve
and Ray down so none of their processes outlive it. `serve_until_terminated` does that for any
Serve application (bench/baselines/ray_multiplex.py uses it too).

    python bench/baselines/ray_app.py --model model.joblib --port 8003
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading


def loopback_only() -> None:
    """Run in every Ray worker at start: Ray Serve 2.60 binds each replica's inter-deployment
    gRPC server to [::] (all interfaces) with no setting to change it; bind it to 127.0.0.1.
    Everything else stays on loopback through RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, which the
    benchmark sets, and the node address given to ray.init."""
    from ray.serve._private import replica
    bind = replica.add_port_to_grpc_server
    replica.add_port_to_grpc_server = lambda server, address: bind(server, address.replace("[::]", "127.0.0.1"))


def predict(model, doc: dict) -> list:
    import numpy as np
    return model.predict(np.asarray(doc["data"], dtype=float)).tolist()


def serve_until_terminated(app, port: int, route_prefix: str = "/score") -> None:
    """Start a local Ray instance on 127.0.0.1, run `app` behind Serve's HTTP proxy on `port`,
    print "ready", and on SIGTERM shut Serve and Ray down."""
    import ray
    from ray import serve

    if __name__ != "__main__":   # imported by another app: Ray's workers cannot import this file by name
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    os.environ.pop("RAY_ADDRESS", None)   # address="local": a new instance, never one already running here
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
             _node_ip_address="127.0.0.1", runtime_env={"worker_process_setup_hook": loopback_only})
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(app, route_prefix=route_prefix)
        print("ready", flush=True)
        stop.wait()
    finally:
        serve.shutdown()
        ray.shutdown()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()

    from ray import serve
    from starlette.requests import Request

    @serve.deployment(num_replicas=1, max_ongoing_requests=64)
    class Scorer:
        def __init__(self, path: str):
            import joblib
            self.model = joblib.load(path)

        async def __call__(self, request: Request) -> list:
            return predict(self.model, await request.json())

    serve_until_terminated(Scorer.bind(args.model), args.port)


if __name__ == "__main__":
    main()
