"""A second Ray node on this machine, joined to a head on 127.0.0.1, as Ray's own cluster_utils
adds nodes (`ray start --address` refuses to while Ray is kept on loopback).

    python tests/ray_node.py GCS_ADDRESS TEMP_DIR NUM_CPUS

Prints "ready" once the node is up and runs until SIGTERM or SIGINT. The caller sets Ray's
environment (modelfleet.backends.ray.cluster.ray_environment) and stops the node's processes by
pid (they all name TEMP_DIR on their command line).
"""

from __future__ import annotations

import signal
import sys


def main() -> None:
    import ray._private.node as node
    import ray._private.parameter as parameter
    address, temp_dir, cpus = sys.argv[1], sys.argv[2], int(sys.argv[3])
    params = parameter.RayParams(node_ip_address="127.0.0.1", gcs_address=address, temp_dir=temp_dir,
                                 num_cpus=cpus, num_gpus=0, object_store_memory=100 * 2**20,
                                 min_worker_port=0, max_worker_port=0, node_manager_port=0,
                                 include_log_monitor=False)
    params.dashboard_agent_listen_port = None   # a free one: the head's default is taken
    node.Node(params, head=False, shutdown_at_exit=True, spawn_reaper=False)
    print("ready", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})


if __name__ == "__main__":
    main()
