"""`python -m modelfleet.backends.ray.status ADDRESS`: one look at a Ray cluster, as one JSON line.

Run by `ray_cluster.status` in a subprocess with the cluster's environment (its auth token in
RAY_AUTH_TOKEN), so that Ray is loaded, and may hang, only here. Prints `{"nodes": [...]}` or
`{"error": "..."}` as its last line.
"""

from __future__ import annotations

import sys

import orjson


def _number(x: float) -> int | float:
    return int(x) if float(x).is_integer() else x


def node_view(node: dict) -> dict:
    resources = node.get("Resources") or {}
    return {"node_id": node["NodeID"], "address": node.get("NodeManagerAddress"), "alive": bool(node.get("Alive")),
            "cpus": _number(resources.get("CPU", 0)), "memory_bytes": int(resources.get("memory", 0))}


def _reason(e: BaseException) -> str:
    """Ray's ConnectionError says only "Failed to connect"; the cause's last line says why."""
    text = str(e).strip() or type(e).__name__
    cause = e.__cause__
    if cause is not None and str(cause).strip():
        text += ": " + str(cause).strip().splitlines()[-1]
    return text


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m modelfleet.backends.ray.status HOST:PORT", file=sys.stderr)
        return 2
    import ray
    try:
        ray.init(address=argv[0], logging_level="ERROR", log_to_driver=False)
        nodes = [node_view(n) for n in ray.nodes()]
    except Exception as e:  # noqa: BLE001 - every failure is an answer: the cluster is not healthy
        sys.stdout.write(orjson.dumps({"error": _reason(e)}).decode() + "\n")
        return 1
    finally:
        ray.shutdown()
    sys.stdout.write(orjson.dumps({"nodes": nodes}).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
