"""The server's handle on a warm parent process that forks local replicas (runtime/zygote.py): one
for the server's own interpreter, one per environment's interpreter."""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import subprocess
import sys
from pathlib import Path

import orjson

# One BLAS thread per replica: replicas are the unit of parallelism, and a forked process must
# not inherit a thread pool.
SINGLE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                 "PYTHONUNBUFFERED": "1"}


class ZygoteLost(RuntimeError):
    """The zygote exited before it answered a spawn request."""


class Zygote:
    """The server's handle on a warm parent process. `subreaper`: the server's pid when it is a
    child subreaper (backends/reaping.py): replicas are then re-parented to it, and outlive the zygote."""

    def __init__(self, log_path: Path, python: Path | None = None, environ: dict[str, str] | None = None,
                 subreaper: int = 0):
        self.log_path = log_path
        self.python = python            # None: the server's own interpreter
        self.environ = environ          # the parent's environment (None: the server's)
        self.subreaper = subreaper
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self.exit_codes: dict[int, int] = {}
        self.children: set[int] = set()   # forked and not exited
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
            env = {**(os.environ if self.environ is None else self.environ), **SINGLE_THREAD,
                   "FLEET_ZYGOTE_FD": str(theirs.fileno())}
            if self.subreaper:
                env["FLEET_SUBREAPER"] = str(self.subreaper)
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "ab") as log:
                # Spawned from the event-loop thread: PR_SET_PDEATHSIG follows the spawning thread.
                self.proc = subprocess.Popen([str(self.python or sys.executable), "-m", "modelfleet.runtime.zygote"],
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
                    self.children.discard(event["exited"])
                elif "id" in event:
                    self.exit_codes.pop(event["pid"], None)  # a reused pid is a new process
                    self.children.add(event["pid"])
                    fut = self._pending.pop(event["id"], None)
                    if fut is not None and not fut.done():
                        fut.set_result(event["pid"])
        finally:
            if self.proc is not None:
                self.proc.poll()  # reap it if it has exited (a new one starts when next needed)
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(ZygoteLost("the replica zygote exited"))
            self._pending.clear()

    async def spawn(self, cfg: dict, fd: int) -> int:
        await self.ensure()
        req_id = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self._pending[req_id] = fut
        msg = orjson.dumps({**cfg, "id": req_id})
        try:
            while True:
                try:
                    socket.send_fds(self.sock, [msg], [fd])
                    break
                except BlockingIOError:   # many spawns at once (a restore): the zygote reads them in turn
                    await asyncio.sleep(0.01)
        except OSError:
            self._pending.pop(req_id, None)
            raise
        pid = await asyncio.wait_for(fut, 30)
        if not pid:
            raise OSError(f"the replica zygote could not fork (log: {self.log_path})")
        return pid

    def stop(self) -> None:
        if self.sock is not None:
            self.sock.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
