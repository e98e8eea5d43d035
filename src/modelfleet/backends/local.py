"""Local compute: each replica is an OS process on this machine, connected by a socketpair."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys

import orjson

from .base import Replica, ReplicaConnection, ReplicaSpec


class LocalBackend:
    name = "local"

    async def start(self, spec: ReplicaSpec) -> Replica:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        cfg = {"fd": theirs.fileno(), "endpoint": spec.endpoint, "deployment": spec.deployment,
               "replica_id": spec.replica_id, "model_type": spec.model_type,
               "model_dir": str(spec.model_dir),
               "scoring_script": str(spec.scoring_script) if spec.scoring_script else None,
               "env": spec.env, "max_batch_size": spec.max_batch_size,
               "max_batch_wait_ms": spec.max_batch_wait_ms}
        env = {**os.environ, **spec.env, "FLEET_REPLICA": orjson.dumps(cfg).decode(),
               "OMP_NUM_THREADS": spec.env.get("OMP_NUM_THREADS", "1"),
               "OPENBLAS_NUM_THREADS": spec.env.get("OPENBLAS_NUM_THREADS", "1"),
               "PYTHONUNBUFFERED": "1"}
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(spec.log_path, "ab") as log:
            # Spawned from the event-loop (main) thread: PR_SET_PDEATHSIG follows the spawning thread.
            proc = subprocess.Popen([sys.executable, "-m", "modelfleet.runtime.replica"],
                                    pass_fds=[theirs.fileno()], env=env, stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT,
                                    cwd=str(spec.scoring_script.parent) if spec.scoring_script else None)
        theirs.close()
        ours.setblocking(False)
        loop = asyncio.get_running_loop()
        _, conn = await loop.connect_accepted_socket(ReplicaConnection, ours)
        return Replica(spec=spec, conn=conn, pid=proc.pid, handle=proc)

    async def stop(self, replica: Replica, grace_s: float = 5.0) -> None:
        replica.conn.close()  # EOF: the replica's loop ends on its own
        proc: subprocess.Popen = replica.handle
        deadline = asyncio.get_running_loop().time() + grace_s
        while proc.poll() is None and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
            if asyncio.get_running_loop().time() > deadline - grace_s / 2:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await asyncio.to_thread(proc.wait)

    def exit_code(self, replica: Replica) -> int | None:
        return replica.handle.poll()

    def kill_all(self, replicas) -> None:
        """Synchronous last resort at server exit."""
        for r in replicas:
            with contextlib.suppress(ProcessLookupError):
                r.handle.kill()
