"""Ray compute: each replica is a Ray actor placed by Ray's scheduler, anywhere in the cluster.

The server does not import Ray: one agent process per compute (backends/ray_agent.py) is the
Ray driver that creates and kills actors. Requests do not go through Ray: each actor listens on
its node's address and the server holds one TCP connection to it, carrying the same frames as a
local replica's socketpair (backends/framed.py), after a per-replica secret. Ray decides where
replicas run (resource requests, SPREAD over nodes); modelfleet's supervisor restarts them when
they die, and Ray places the replacements on the nodes still alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import orjson

from .cluster import ray_environment
from ...domain.errors import DeploymentFailed
from ...files.fsutil import tail_lines
from ..base import ReplicaSpec
from ..framed import FramedReplica
from ..local.backend import replica_config

log = logging.getLogger("modelfleet.backends.ray")

AGENT_START_TIMEOUT_S = 90.0
REQUEST_TIMEOUT_S = 150.0


def agent_environment(address: str, auth_token: str | None) -> dict[str, str]:
    """A driver's environment: Ray's settings for this cluster, and a quick exit when it is lost
    (so that the backend starts a fresh agent rather than waiting on a dead one)."""
    return {**os.environ, **ray_environment(auth_token, address), "RAY_gcs_rpc_server_reconnect_timeout_s": "5"}


class RayReplica(FramedReplica):
    """A ReplicaHandle over a TCP connection to a replica actor."""

    def __init__(self, backend: RayBackend, spec: ReplicaSpec, where: dict):
        super().__init__(spec)
        self.backend = backend
        self.where = where

    def memory_bytes(self) -> int | None:
        return self.last_rss

    def address(self) -> dict | None:
        return self.where   # host, port, pid, node_id and the secret: every server's gateway connects

    async def stop(self, grace_s: float = 5.0) -> None:
        self.close_connection()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.backend.request({"op": "stop", "replica": self.id}), max(grace_s, 5.0))

    def note(self, message: str) -> None:
        with contextlib.suppress(OSError), open(self.spec.log_path, "a") as f:
            f.write(f"\n[modelfleet] {message}\n")

    async def log_tail(self, lines: int) -> str:
        try:
            answer = await asyncio.wait_for(
                self.backend.request({"op": "tail", "replica": self.id, "lines": lines}), 15)
            remote = answer["text"]
        except Exception as e:  # the actor is gone: what the server noted is what there is
            remote = f"(the replica's own log is unavailable: {e})"
        notes = await asyncio.to_thread(tail_lines, self.spec.log_path, lines)
        return "\n".join([remote, *notes]) if notes else remote

    def describe(self) -> dict:
        return {"placement": "dedicated", "pid": self.where.get("pid"), "node": self.where.get("host"),
                "node_id": self.where.get("node_id"), "loaded": True, "last_load_ms": self.info.get("load_ms"),
                "fast_path": self.info.get("fast_path"), "compute": self.backend.name, "log": str(self.spec.log_path)}


class RayBackend:
    """The replicas of one Ray compute, and its agent process."""

    def __init__(self, name: str, address: str, auth_token: str | None, namespace: str, logs_dir: Path,
                 keep: frozenset[str] | None = frozenset()):
        self.name = name
        self.address = address
        self.auth_token = auth_token
        self.namespace = namespace
        self.log_path = logs_dir / f"ray-agent-{name}.log"
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self.last_fault: str | None = None   # why the cluster cannot be used now, if it cannot
        self._pending: dict[int, asyncio.Future] = {}
        self._ids = itertools.count(1)
        self._reader: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        self._cleaned = False   # an agent of this server removed the actors of earlier ones
        # While this server leads: the actors it adopted, which that removal spares. None while it
        # follows: its agent (started to read a log) removes nothing, the actors are the leader's.
        self.keep = keep

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None and self._reader is not None \
            and not self._reader.done()

    async def _ensure_agent(self) -> None:
        async with self._lock:
            if self.alive:
                return
            self._kill_agent()
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            env = {**agent_environment(self.address, self.auth_token), "FLEET_AGENT_FD": str(theirs.fileno())}
            argv = [sys.executable, "-m", "modelfleet.backends.ray.agent", "--address", self.address,
                    "--namespace", self.namespace]
            cleaning = not self._cleaned and self.keep is not None
            if cleaning:
                argv += ["--clean", "--keep", ",".join(sorted(self.keep))]
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "ab") as log_file:
                # From the event-loop thread: PR_SET_PDEATHSIG follows the spawning thread.
                self.proc = subprocess.Popen(argv, pass_fds=[theirs.fileno()], env=env, stdin=subprocess.DEVNULL,
                                             stdout=log_file, stderr=subprocess.STDOUT)
            theirs.close()
            ours.setblocking(False)
            self.sock = ours
            loop = asyncio.get_running_loop()
            try:
                first = await asyncio.wait_for(loop.sock_recv(ours, 1 << 16), AGENT_START_TIMEOUT_S)
            except asyncio.TimeoutError:
                first = orjson.dumps({"ok": False, "error": f"no answer from the Ray cluster at {self.address} "
                                                            f"within {AGENT_START_TIMEOUT_S:.0f}s"})
            hello = orjson.loads(first) if first else {"ok": False, "error": "the Ray agent exited at start"}
            if not hello.get("ok"):
                self._kill_agent()
                self.last_fault = f"compute {self.name!r}: {hello.get('error')} (log: {self.log_path})"
                raise DeploymentFailed(self.last_fault)
            self._cleaned = self._cleaned or cleaning
            self.last_fault = None
            self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                msg = await loop.sock_recv(self.sock, 1 << 20)
                if not msg:
                    break
                reply = orjson.loads(msg)
                fut = self._pending.pop(reply.get("id"), None)
                if fut is not None and not fut.done():
                    fut.set_result(reply)
        finally:
            gone = DeploymentFailed(f"compute {self.name!r}: the Ray agent exited (log: {self.log_path})")
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(gone)
            self._pending.clear()

    async def request(self, msg: dict) -> dict:
        await self._ensure_agent()
        req_id = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self._pending[req_id] = fut
        self.sock.send(orjson.dumps({**msg, "id": req_id}))
        try:
            reply = await asyncio.wait_for(fut, REQUEST_TIMEOUT_S)
        except asyncio.TimeoutError:
            self._kill_agent()  # a driver stuck on a lost cluster: start afresh next time
            raise DeploymentFailed(f"compute {self.name!r}: the Ray cluster did not answer "
                                   f"within {REQUEST_TIMEOUT_S:.0f}s") from None
        finally:
            self._pending.pop(req_id, None)
        if not reply.get("ok"):
            raise DeploymentFailed(f"compute {self.name!r}: {reply.get('error')}")
        return reply

    async def warm(self) -> None:
        pass  # the agent starts with the first replica: an unused compute costs nothing

    async def adopt(self, keep: set[str] | None) -> None:
        """This server leads now (`keep`: the actors it adopted) or follows (None). A leader whose
        agent already runs (it read a log while following) removes the earlier servers' actors now."""
        self.keep = frozenset(keep) if keep is not None else None
        if self.keep is not None and not self._cleaned and self.alive:
            await self.request({"op": "clean", "keep": sorted(self.keep)})
            self._cleaned = True

    async def start(self, spec: ReplicaSpec) -> RayReplica:
        script_path = spec.script_path
        requests = spec.resources.requests
        body = {"replica_id": spec.replica_id,
                "config": replica_config(spec, spec.model_dir, script_path),
                "env": spec.env, "model_sha256": spec.model_sha256, "model_dir": str(spec.model_dir),
                "model_source": spec.model_source.to_wire() if spec.model_source else None,
                "code_source": spec.code_source.to_wire() if spec.code_source else None,
                "code_sha256": spec.code_sha256, "code_dir": str(spec.code_dir) if spec.code_dir else None,
                # an environment: Ray builds it on each node (its runtime_env), from the same pins
                "pip": list(spec.environment.requirements) if spec.environment else None,
                "num_cpus": requests.cpu_cores, "memory": requests.memory_bytes}
        try:
            where = await self.request({"op": "start", "spec": body})
        except DeploymentFailed as e:
            self.last_fault = e.message
            raise
        self.last_fault = None
        try:
            replica = await self.connect(spec, where)
        except DeploymentFailed:
            with contextlib.suppress(Exception):
                await self.request({"op": "stop", "replica": spec.replica_id})
            raise
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        replica.note(f"replica {spec.replica_id} placed by Ray on node {where['host']} "
                     f"({where['node_id'][:12]}), pid {where['pid']}")
        if spec.model_source is not None:
            store = spec.model_source.document["name"]
            fetched = where.get("fetched_bytes") or 0
            replica.note(f"model {spec.model_sha256[:12]}: read {fetched} bytes from datastore {store!r} into the "
                         f"node's cache" if fetched else
                         f"model {spec.model_sha256[:12]}: in the node's cache, nothing read from datastore {store!r}")
        return replica

    async def connect(self, spec: ReplicaSpec, where: dict) -> RayReplica:
        """A connection of this server's to a replica actor at `where` (its own, or one another
        server started: every gateway reaches every actor), opened with the replica's secret."""
        loop = asyncio.get_running_loop()
        try:
            _, replica = await asyncio.wait_for(loop.create_connection(
                lambda: RayReplica(self, spec, where), where["host"], where["port"]), 30)
        except (OSError, asyncio.TimeoutError) as e:
            raise DeploymentFailed(f"compute {self.name!r}: cannot reach replica {spec.replica_id} at "
                                   f"{where['host']}:{where['port']}: {e}") from None
        replica.open_with(bytes.fromhex(where["token"]))
        return replica

    def _kill_agent(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            self._reader = None
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            with contextlib.suppress(Exception):
                self.proc.wait(timeout=5)

    def fault(self, compute: str) -> str | None:
        return self.last_fault

    def release(self, python: Path) -> None:
        pass   # Ray builds environments on its nodes: nothing runs here ahead of need

    async def shutdown(self) -> None:
        self._kill_agent()


def namespace_for(workspace_path: Path) -> str:
    """One Ray namespace per workspace, so two workspaces can share a cluster."""
    return "modelfleet-" + hashlib.sha256(str(workspace_path.resolve()).encode()).hexdigest()[:12]

