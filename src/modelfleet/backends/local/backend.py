"""Local compute: each replica is an OS process on this machine, connected by a socketpair.

Replicas are forked from a warm zygote (see backends/zygote.py) and start in milliseconds; a
replica in an environment (ReplicaSpec.environment) is forked from that environment's own zygote,
which runs the environment's interpreter. A deployment whose environment variables change how
native libraries initialise (thread counts, library paths) gets a fresh interpreter instead,
since those settings only take effect at import.
The socketpair carries length-prefixed frames (runtime/protocol.py): many requests in flight at
once, matched by id. Forked replicas are the server's own children (backends/reaping.py), so
they outlive their zygote.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import orjson

from ...files.fsutil import tail_lines
from ...files.logfmt import iso_time
from ..base import ReplicaSpec
from ..framed import FramedReplica
from .reaping import Children
from .zygote_client import SINGLE_THREAD, Zygote, ZygoteLost

log = logging.getLogger("modelfleet.backends.local")

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
COLD_ENV_PREFIXES = ("OMP_", "MKL_", "OPENBLAS_", "NUMEXPR_", "PYTHON", "LD_", "CUDA", "TF_", "TORCH", "GOTO")
SWEEP_S = 2.0   # how often orphans re-parented to the server are reaped


def replica_config(spec: ReplicaSpec, model_dir: Path, script: Path | None) -> dict:
    """What runtime/replica.py reads: the spec's settings, with paths as the replica sees them."""
    return {"endpoint": spec.endpoint, "deployment": spec.deployment, "replica_id": spec.replica_id,
            "model_type": spec.model_type, "model_dir": str(model_dir),
            "scoring_script": str(script) if script else None,
            "max_batch_size": spec.batching.max_batch_size,
            "max_batch_wait_ms": spec.batching.max_batch_wait_ms, "fast_path": spec.fast_path}


class LocalReplica(FramedReplica):
    """A ReplicaHandle over one replica process and its socketpair."""

    def __init__(self, backend: LocalBackend, spec: ReplicaSpec, zygote: Zygote):
        super().__init__(spec)
        self.backend = backend
        self.zygote = zygote        # the one it was forked from, or would have been
        self.pid: int | None = None
        self.popen: subprocess.Popen | None = None   # set for a fresh interpreter, not a fork
        self.code: int | None = None                 # once it has exited

    async def _gone_before_ready(self) -> str:
        await asyncio.sleep(0.1)  # let its last words reach the log
        return await super()._gone_before_ready()

    def memory_bytes(self) -> int | None:
        try:
            with open(f"/proc/{self.pid}/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError, TypeError):
            return None

    def cpu_seconds(self) -> float | None:
        try:
            with open(f"/proc/{self.pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime + stime
        except (OSError, ValueError, IndexError, TypeError):
            return None

    async def exit_code(self) -> int | None:
        for _ in range(50):  # the exit code arrives a moment after the socket closes
            code = self._poll()
            if code is not None:
                return code
            await asyncio.sleep(0.02)
        return None

    def _poll(self) -> int | None:
        if self.code is None and self.pid is not None:
            if self.popen is not None:
                self.code = self.popen.poll()
            else:  # the server's own child (re-parented), or the zygote's when the server is no subreaper
                self.code = self.backend.children.reap(self.pid)
                if self.code is None:
                    self.code = self.zygote.exit_codes.get(self.pid)
            if self.code is not None:
                self.backend.children.owned.discard(self.pid)
                self.zygote.children.discard(self.pid)
        return self.code

    def _running(self) -> bool:
        if self.pid is None or self._poll() is not None:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        return self.backend.children.subreaper or self.popen is not None or self.zygote.alive

    async def stop(self, grace_s: float = 5.0) -> None:
        """EOF first (the replica's loop ends by itself), then SIGTERM, then SIGKILL."""
        self.close_connection()
        deadline = self.loop.time() + grace_s
        signalled = False
        while self._running() and self.loop.time() < deadline:
            await asyncio.sleep(0.02)
            if not signalled and self.loop.time() > deadline - grace_s / 2:
                signalled = True
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGTERM)
        if self._running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            for _ in range(100):
                if not self._running():
                    break
                await asyncio.sleep(0.01)
        if self.popen is not None:
            with contextlib.suppress(Exception):
                self.popen.wait(timeout=1)

    def note(self, message: str) -> None:
        with contextlib.suppress(OSError), open(self.spec.log_path, "a") as f:
            f.write(f"{iso_time(time.time())} [modelfleet] {message}\n")

    def describe(self) -> dict:
        return {"placement": "dedicated", "pid": self.pid, "loaded": True,
                "last_load_ms": self.info.get("load_ms"), "fast_path": self.info.get("fast_path"),
                "log": str(self.spec.log_path)}

    async def log_tail(self, lines: int) -> str:
        return "\n".join(await asyncio.to_thread(tail_lines, self.spec.log_path, lines))


def runtime_path(folder: Path) -> Path:
    """`folder` holding only a link to this server's modelfleet package: the PYTHONPATH of replicas
    in an environment, which import modelfleet's runtime and nothing else of the server's."""
    target = Path(__file__).resolve().parents[2]   # the modelfleet package
    link = folder / "modelfleet"
    if not (link.is_symlink() and link.resolve() == target):
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".modelfleet-{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(target, target_is_directory=True)
        os.replace(tmp, link)
    return folder


class LocalBackend:
    name = "local"

    def __init__(self, logs_dir: Path | None = None, runtime_dir: Path | None = None):
        self.logs_dir = logs_dir or Path(".")
        self.runtime_dir = runtime_dir or self.logs_dir.parent / "run" / "pythonpath"
        self.children = Children()
        self.subreaper = os.getpid() if self.children.subreaper else 0
        self.zygote = Zygote(self.logs_dir / "zygote.log", subreaper=self.subreaper)   # the server's interpreter
        self.zygotes: dict[Path, Zygote] = {}                # one per environment's interpreter
        self._sweeper: asyncio.Task | None = None

    def _environ(self, python: Path | None) -> dict[str, str]:
        """The environment of processes that run `python`: an environment's interpreter finds
        modelfleet through PYTHONPATH, and none of the server's own packages."""
        if python is None:
            return dict(os.environ)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        return {**env, "PYTHONPATH": str(runtime_path(self.runtime_dir))}

    def _zygote(self, python: Path | None) -> Zygote:
        if python is None:
            return self.zygote
        zygote = self.zygotes.get(python)
        if zygote is None:
            zygote = self.zygotes[python] = Zygote(self.logs_dir / f"zygote-{python.parents[1].name}.log", python,
                                                   self._environ(python), self.subreaper)
        return zygote

    def fault(self, compute: str) -> str | None:
        return None   # this machine: a failure is the replica's own, in its log

    def release(self, python: Path) -> None:
        """Stop the zygote of an environment's interpreter when no replica of it runs (its build
        is being removed)."""
        zygote = self.zygotes.get(python)
        if zygote is not None and not zygote.children:
            zygote.stop()
            del self.zygotes[python]

    async def warm(self) -> None:
        """Start the zygote ahead of the first deployment, so that one is fast too."""
        if self._sweeper is None:
            self._sweeper = asyncio.ensure_future(self._sweep())
        with contextlib.suppress(Exception):
            await self.zygote.ensure()

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_S)
            zygotes = {z.proc.pid for z in [self.zygote, *self.zygotes.values()] if z.proc is not None}
            with contextlib.suppress(OSError):  # out of file descriptors: next time
                self.children.sweep(zygotes)

    @staticmethod
    def _cold(spec: ReplicaSpec) -> bool:
        return os.environ.get("FLEET_COLD_START") == "1" or any(
            k.startswith(COLD_ENV_PREFIXES) for k in spec.env)

    async def start(self, spec: ReplicaSpec) -> LocalReplica:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        script = spec.script_path
        cfg = {**replica_config(spec, spec.model_dir, script), "log_path": str(spec.log_path),
               "memory_limit": spec.resources.memory_limit_bytes}
        cwd = str(script.parent) if script else None
        python = spec.environment.python if spec.environment else None
        env = {**self._environ(python), **SINGLE_THREAD, **spec.env}
        if python is not None and "PYTHONPATH" in spec.env:  # the deployment's own, then modelfleet's
            env["PYTHONPATH"] = spec.env["PYTHONPATH"] + os.pathsep + self._environ(python)["PYTHONPATH"]
        zygote = self._zygote(python)
        with contextlib.suppress(OSError):  # a full disk: the replica serves without its log
            spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            pid = popen = None
            if not self._cold(spec):
                for _ in range(2):  # a zygote lost mid-spawn is replaced on the second try
                    try:
                        pid = await zygote.spawn({**cfg, "environ": env, "cwd": cwd,
                                                  "log_path": str(spec.log_path)}, theirs.fileno())
                        break
                    except ZygoteLost:
                        continue
                    except OSError as e:  # e.g. an environment too large for one message
                        log.warning("zygote could not start %s (%s); using a fresh interpreter", spec.replica_id, e)
                        break
            if pid is None:
                popen = self._popen(python, cfg, env, cwd, theirs, spec.log_path)
                pid = popen.pid
                self.children.owned.add(pid)
            self.children.new(pid)
            ours.setblocking(False)
            _, replica = await asyncio.get_running_loop().connect_accepted_socket(
                lambda: LocalReplica(self, spec, zygote), ours)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        replica.pid, replica.popen = pid, popen
        return replica

    @staticmethod
    def _popen(python: Path | None, cfg: dict, env: dict, cwd: str | None, theirs: socket.socket,
               log_path: Path) -> subprocess.Popen:
        env = {**env, "FLEET_REPLICA": orjson.dumps({**cfg, "fd": theirs.fileno()}).decode()}
        try:
            log_file = open(log_path, "ab")
        except OSError:  # a full or read-only disk loses the replica's log, never the replica
            log_file = open(os.devnull, "ab")
        with log_file:
            # From the event-loop (main) thread: PR_SET_PDEATHSIG follows the spawning thread.
            return subprocess.Popen([str(python or sys.executable), "-m", "modelfleet.runtime.replica"],
                                    pass_fds=[theirs.fileno()], env=env, stdin=subprocess.DEVNULL,
                                    stdout=log_file, stderr=subprocess.STDOUT, cwd=cwd)

    async def shutdown(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for zygote in [self.zygote, *self.zygotes.values()]:
            zygote.stop()
