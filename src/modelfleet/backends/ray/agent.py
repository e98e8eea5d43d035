"""The Ray driver for one compute: a child process of the server, so the server never imports Ray.

Ray ends a driver whose cluster is gone; keeping the driver out of the server means a lost
cluster costs its endpoints, never the server or the endpoints on local compute. The server
talks to the agent over a SOCK_SEQPACKET socketpair (each message arrives whole):

    server -> agent   {"id": n, "op": "start", "spec": {...}}     create a replica actor
                      {"id": n, "op": "stop", "replica": id}      kill it
                      {"id": n, "op": "tail", "replica": id, "lines": k}
                      {"id": n, "op": "clean", "keep": [id, ...]}  kill the others (a new leader)
    agent -> server   {"id": n, "ok": true, ...} or {"id": n, "ok": false, "error": "one line"}

Replica actors are detached and named in the workspace's namespace, so they outlive an agent
that crashes and the server that started them; an agent started with --clean (the first one of a
leading server) kills any left over from an earlier server first, but those it adopted (--keep). Requests run in threads: a slow start never holds up a stop.

Run as `python -m modelfleet.backends.ray.agent --address HOST:PORT --namespace NS [--clean]`
with the socket as file descriptor $FLEET_AGENT_FD.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson

START_TIMEOUT_S = 120.0


class Agent:
    def __init__(self, sock: socket.socket, namespace: str):
        import ray
        from .actor import ReplicaActor
        self.ray = ray
        self.sock = sock
        self.namespace = namespace
        self.actor_class = ray.remote(ReplicaActor)
        self.snapshots: dict[str, object] = {}   # sha256 -> ObjectRef of its packed files
        self.placed: dict[str, tuple[str, str]] = {}  # replica -> (its deployment, its node)
        self.lock = threading.Lock()
        self.send_lock = threading.Lock()

    def clean(self, keep: set[str]) -> None:
        """Kill replica actors an earlier server left behind, but those the server adopted."""
        for name in self.ray.util.list_named_actors():
            if name in keep:
                continue
            try:
                self.ray.kill(self.ray.get_actor(name))
            except Exception:
                pass

    def _snapshot(self, sha256: str, folder: str, prefix: str):
        from .actor import pack
        with self.lock:
            ref = self.snapshots.get(sha256)
            if ref is None:
                ref = self.snapshots[sha256] = self.ray.put(pack(Path(folder), prefix))
            return ref

    def start(self, spec: dict) -> dict:
        token = secrets.token_bytes(32)
        group = spec["config"]["endpoint"] + "/" + spec["config"]["deployment"]
        options = {"name": spec["replica_id"], "lifetime": "detached", "max_restarts": 0,
                   "num_cpus": spec["num_cpus"], "scheduling_strategy": self._spread(group)}
        if spec.get("memory"):
            options["memory"] = spec["memory"]
        if spec.get("pip"):  # Ray's uv runtime_env: a virtualenv per node, over the node's own packages
            options["runtime_env"] = {"uv": {"packages": spec["pip"], "uv_pip_install_options": ["--no-build"]}}
        # A model or code in a datastore is read by the node itself; else it goes through the object
        # store. A model's stored paths start inside its snapshot; a code root's with the root's name.
        model = spec["model_source"] or self._snapshot(spec["model_sha256"], spec["model_dir"], "")
        code = (spec.get("code_source") or self._snapshot(spec["code_sha256"], spec["code_dir"],
                                                          Path(spec["code_dir"]).name + "/")
                if spec.get("code_sha256") else None)
        actor = self.actor_class.options(**options).remote(
            spec["config"], spec["env"], spec["model_sha256"], model, spec.get("code_sha256"), code, token)
        try:
            where = self.ray.get(actor.address.remote(), timeout=START_TIMEOUT_S)
        except Exception:
            self._kill(spec["replica_id"])
            raise
        with self.lock:
            self.placed[spec["replica_id"]] = (group, where["node_id"])
        return {**where, "token": token.hex()}

    def _spread(self, group: str):
        """The alive node holding the fewest replicas of this deployment (then the fewest of all).
        Hard affinity: Ray's soft affinity prefers its own choice on a loaded machine; a node lost
        meanwhile fails the start, and the controller's retry chooses among the nodes still alive."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
        alive = [n["NodeID"] for n in self.ray.nodes() if n.get("Alive")]
        if len(alive) < 2:
            return "SPREAD"
        with self.lock:
            placed = list(self.placed.values())
        mine = {n: sum(1 for g, m in placed if m == n and g == group) for n in alive}
        total = {n: sum(1 for _, m in placed if m == n) for n in alive}
        node = min(alive, key=lambda n: (mine[n], total[n]))
        print(f"placing a replica of {group} on node {node[:12]} (of {len(alive)} alive)", flush=True)
        return NodeAffinitySchedulingStrategy(node, soft=False)

    def _kill(self, name: str) -> None:
        try:
            self.ray.kill(self.ray.get_actor(name))
        except ValueError:
            pass  # already gone

    def stop(self, replica: str) -> dict:
        self._kill(replica)
        with self.lock:
            self.placed.pop(replica, None)
        return {}

    def tail(self, replica: str, lines: int) -> dict:
        actor = self.ray.get_actor(replica)
        return {"text": self.ray.get(actor.log_tail.remote(lines), timeout=10)}

    def handle(self, msg: dict) -> None:
        try:
            op = msg["op"]
            if op == "start":
                out = self.start(msg["spec"])
            elif op == "stop":
                out = self.stop(msg["replica"])
            elif op == "clean":
                self.clean(set(msg["keep"]))
                out = {}
            elif op == "tail":
                out = self.tail(msg["replica"], int(msg["lines"]))
            else:
                raise ValueError(f"unknown op {op!r}")
            reply = {"id": msg["id"], "ok": True, **out}
        except Exception as e:
            text = str(e).strip().splitlines()
            reply = {"id": msg["id"], "ok": False, "error": f"{type(e).__name__}: {text[-1] if text else ''}"}
        with self.send_lock:
            self.sock.send(orjson.dumps(reply))

    def serve(self) -> None:
        with ThreadPoolExecutor(max_workers=16) as pool:
            while True:
                msg = self.sock.recv(1 << 20)
                if not msg:
                    return  # the server is gone
                pool.submit(self.handle, orjson.loads(msg))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m modelfleet.backends.ray.agent")
    ap.add_argument("--address", required=True)
    ap.add_argument("--namespace", required=True)
    ap.add_argument("--clean", action="store_true")
    ap.add_argument("--keep", default="", help="with --clean: replica actors to leave running (adopted)")
    args = ap.parse_args(argv)
    from ...runtime.replica import die_with_parent
    die_with_parent("mf:ray-agent")
    sock = socket.socket(fileno=int(os.environ["FLEET_AGENT_FD"]))
    import ray
    try:
        ray.init(address=args.address, namespace=args.namespace, logging_level="ERROR", log_to_driver=False)
    except Exception as e:
        sock.send(orjson.dumps({"id": 0, "ok": False, "error": f"cannot reach the Ray cluster at {args.address}: "
                                                              f"{str(e).strip().splitlines()[-1]}"}))
        return 1
    agent = Agent(sock, args.namespace)
    if args.clean:
        agent.clean({name for name in args.keep.split(",") if name})
    sock.send(orjson.dumps({"id": 0, "ok": True}))
    agent.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
