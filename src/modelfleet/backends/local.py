"""Local compute: each replica is an OS process on this machine, connected by a socketpair.

Replicas are forked from a warm zygote (see runtime/zygote.py) and start in milliseconds. A
deployment whose environment changes how native libraries initialise (thread counts, library
paths) gets a fresh interpreter instead, since those settings only take effect at import.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import orjson

from .base import Replica, ReplicaConnection, ReplicaSpec

log = logging.getLogger("modelfleet.backends.local")

COLD_ENV_PREFIXES = ("OMP_", "MKL_", "OPENBLAS_", "NUMEXPR_", "PYTHON", "LD_", "CUDA", "TF_", "TORCH", "GOTO")
# One BLAS thread per replica: replicas are the unit of parallelism, and a forked process must
# not inherit a thread pool.
SINGLE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                 "PYTHONUNBUFFERED": "1"}


class Zygote:
    """The server's handle on the warm parent process."""

    def __init__(self, log_path: Path):
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self.exit_codes: dict[int, int] = {}
        self._pending: dict[int, asyncio.Future] = {}
        self._ids = itertools.count(1)
        self._reader: asyncio.Task | None = None
        self._lock = asyncio.Lock()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None and self._reader is not None \
            and not self._reader.done()

    async def ensure(self) -> None:
        async with self._lock:
            if self.alive:
                return
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            env = {**os.environ, **SINGLE_THREAD, "FLEET_ZYGOTE_FD": str(theirs.fileno())}
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "ab") as log:
                # Spawned from the event-loop thread: PR_SET_PDEATHSIG follows the spawning thread.
                self.proc = subprocess.Popen([sys.executable, "-m", "modelfleet.runtime.zygote"],
                                             pass_fds=[theirs.fileno()], env=env, stdin=subprocess.DEVNULL,
                                             stdout=log, stderr=subprocess.STDOUT)
            theirs.close()
            ours.setblocking(False)
            self.sock = ours
            loop = asyncio.get_running_loop()
            try:
                first = await asyncio.wait_for(loop.sock_recv(ours, 1 << 16), 120)
                if not first:
                    raise RuntimeError(f"the replica zygote exited at start (log: {self.log_path})")
            except BaseException:
                self.stop()
                raise
            self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                msg = await loop.sock_recv(self.sock, 1 << 16)
                if not msg:
                    break
                event = orjson.loads(msg)
                if "exited" in event:
                    self.exit_codes[event["exited"]] = event["code"]
                elif "id" in event:
                    self.exit_codes.pop(event["pid"], None)  # a reused pid is a new process
                    fut = self._pending.pop(event["id"], None)
                    if fut is not None and not fut.done():
                        fut.set_result(event["pid"])
        finally:
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(RuntimeError("the replica zygote exited"))
            self._pending.clear()

    async def spawn(self, cfg: dict, fd: int) -> int:
        await self.ensure()
        req_id = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self._pending[req_id] = fut
        try:
            socket.send_fds(self.sock, [orjson.dumps({**cfg, "id": req_id})], [fd])
        except OSError:
            self._pending.pop(req_id, None)
            raise
        return await asyncio.wait_for(fut, 30)

    def stop(self) -> None:
        if self.sock is not None:
            self.sock.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class LocalBackend:
    name = "local"

    def __init__(self, logs_dir: Path | None = None):
        self.zygote = Zygote((logs_dir or Path(".")) / "zygote.log")

    async def warm(self) -> None:
        """Start the zygote ahead of the first deployment, so that one is fast too."""
        with contextlib.suppress(Exception):
            await self.zygote.ensure()

    @staticmethod
    def _cold(spec: ReplicaSpec) -> bool:
        return os.environ.get("FLEET_COLD_START") == "1" or any(
            k.startswith(COLD_ENV_PREFIXES) for k in spec.env)

    async def start(self, spec: ReplicaSpec) -> Replica:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        cfg = {"endpoint": spec.endpoint, "deployment": spec.deployment, "replica_id": spec.replica_id,
               "model_type": spec.model_type, "model_dir": str(spec.model_dir),
               "scoring_script": str(spec.scoring_script) if spec.scoring_script else None,
               "max_batch_size": spec.max_batch_size, "max_batch_wait_ms": spec.max_batch_wait_ms}
        cwd = str(spec.scoring_script.parent) if spec.scoring_script else None
        env = {**os.environ, **SINGLE_THREAD, **spec.env}
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            handle = None
            pid = None
            if not self._cold(spec):
                try:
                    pid = await self.zygote.spawn({**cfg, "environ": env, "cwd": cwd,
                                                   "log_path": str(spec.log_path)}, theirs.fileno())
                except OSError as e:  # e.g. an environment too large for one message
                    log.warning("zygote could not start %s (%s); using a fresh interpreter", spec.replica_id, e)
            if pid is None:
                handle = self._popen(cfg, env, cwd, theirs, spec.log_path)
                pid = handle.pid
            ours.setblocking(False)
            _, conn = await asyncio.get_running_loop().connect_accepted_socket(ReplicaConnection, ours)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        return Replica(spec=spec, conn=conn, pid=pid, handle=handle)

    @staticmethod
    def _popen(cfg: dict, env: dict, cwd: str | None, theirs: socket.socket, log_path: Path) -> subprocess.Popen:
        env = {**env, "FLEET_REPLICA": orjson.dumps({**cfg, "fd": theirs.fileno()}).decode()}
        with open(log_path, "ab") as log:
            # From the event-loop (main) thread: PR_SET_PDEATHSIG follows the spawning thread.
            return subprocess.Popen([sys.executable, "-m", "modelfleet.runtime.replica"],
                                    pass_fds=[theirs.fileno()], env=env, stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT, cwd=cwd)

    def exit_code(self, replica: Replica) -> int | None:
        if replica.handle is not None:
            return replica.handle.poll()
        return self.zygote.exit_codes.get(replica.pid)

    def _running(self, replica: Replica) -> bool:
        if replica.handle is not None:
            return replica.handle.poll() is None
        if replica.pid in self.zygote.exit_codes:
            return False
        try:
            os.kill(replica.pid, 0)
        except ProcessLookupError:
            return False
        return self.zygote.alive

    async def stop(self, replica: Replica, grace_s: float = 5.0) -> None:
        """EOF first (the replica's loop ends by itself), then SIGTERM, then SIGKILL."""
        replica.conn.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        signalled = False
        while self._running(replica) and loop.time() < deadline:
            await asyncio.sleep(0.02)
            if not signalled and loop.time() > deadline - grace_s / 2:
                signalled = True
                with contextlib.suppress(ProcessLookupError):
                    os.kill(replica.pid, signal.SIGTERM)
        if self._running(replica):
            with contextlib.suppress(ProcessLookupError):
                os.kill(replica.pid, signal.SIGKILL)
            for _ in range(100):
                if not self._running(replica):
                    break
                await asyncio.sleep(0.01)
        if replica.handle is not None:
            with contextlib.suppress(Exception):
                replica.handle.wait(timeout=1)

    def shutdown(self) -> None:
        self.zygote.stop()
