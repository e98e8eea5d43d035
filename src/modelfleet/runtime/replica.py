"""The replica process: load one model, then answer framed requests on its socket until EOF.

Started by a backend with its configuration in $FLEET_REPLICA (JSON) and a connected socket
inherited as file descriptor `fd`. One thread serves, blocking on purpose: one model call at a
time, every waiting request on the socket taken as one batch when batching is on. A second thread
only sends heartbeats (runtime/heartbeat.py), so a hung `run()` is told apart from a slow one.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import orjson

from . import memory, protocol as p, replica_log
from .fast_path import DEFAULT as FAST_PATH_DEFAULT
from .heartbeat import Outbox
from .loaders import load_scorer, set_model_env, to_json
from .user_errors import describe_error, user_traceback

REPLICA_OOM_SCORE_ADJ = 800   # under memory pressure the kernel kills a replica (the biggest) first


def die_with_parent(name: str | None = None) -> None:
    """Linux: the kernel kills us when our parent dies, so no replica is ever orphaned; `name`
    shows in ps/top (15 bytes at most) so operators can tell replicas apart."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if name:
            libc.prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
    except OSError:
        pass


def die_with_server(server_pid: int, name: str) -> bool:
    """For a replica forked twice so that it outlives its warm parent: wait until the kernel has
    re-parented it to the server (a child subreaper), then die with the server. False if the
    server is gone already."""
    first_parent = os.getppid()
    deadline = time.monotonic() + 5.0
    while os.getppid() == first_parent and first_parent != server_pid and time.monotonic() < deadline:
        time.sleep(0.0005)  # the intermediate process exits right after forking us
    die_with_parent(name)
    return os.getppid() == server_pid


def oom_priority(adj: int) -> None:
    """Linux: how eagerly the OOM killer picks this process (-1000..1000); raising it needs no privilege."""
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(adj))
    except OSError:
        pass


def _error(exc: BaseException) -> bytes:
    return orjson.dumps({"error": {"code": "model_error", "message": describe_error(exc)}})


class Replica:
    def __init__(self, cfg: dict, sock: socket.socket):
        self.cfg = cfg
        self.sock = sock
        self.out = Outbox(sock)
        self.budget: memory.MemoryBudget | None = None
        self.out_of_memory = False   # a MemoryError with the budget used up: answer, then exit
        # Every setting arrives with its default applied (schema/deployment_settings.py is where defaults live).
        self.max_batch = int(cfg["max_batch_size"])
        self.wait_s = float(cfg["max_batch_wait_ms"]) / 1000.0
        self.names = (cfg.get("endpoint", ""), cfg.get("deployment", ""))
        self.scorer = None
        # one model call at a time, whichever connection asked (several servers reach a Ray replica)
        self.model_lock = threading.Lock()
        self.ready_info: dict = {}
        self.tracebacks = replica_log.TracebackLimiter(user_traceback)

    def load(self) -> None:
        model_dir = Path(self.cfg["model_dir"])
        set_model_env(model_dir)
        script = self.cfg.get("scoring_script")
        collector = None
        if script and os.environ.get("FLEET_DATA_COLLECTOR"):   # score.py's azureml-ai-monitoring Collector
            from ..collection import mdc
            collector = mdc.start_if_configured()
        self.scorer = load_scorer(self.cfg["model_type"], model_dir, Path(script) if script else None,
                                  self.cfg.get("fast_path", FAST_PATH_DEFAULT))
        if collector is not None:
            collector.loaded()

    def score(self, bodies: list[bytes], ids: list[str]) -> list[tuple[int, bytes]]:
        """(status, payload) of each body, scored in one model call; `ids` name the requests in the log."""
        replica_log.request_id = ids[0] if len(ids) == 1 else f"{ids[0]}+{len(ids) - 1}"
        try:
            with self.model_lock:
                self.out.call_started()
                results = self.scorer.score(bodies)
        except Exception as e:  # the model raised: every request of the batch gets the error
            if len(bodies) > 1 and not self._memory_full(e):  # one by one: one bad body must not fail the rest
                return [self.score([b], [i])[0] for b, i in zip(bodies, ids, strict=True)]
            if self._memory_full(e):
                return [(p.MODEL_ERROR, self._memory_error())] * len(bodies)
            self.tracebacks.report(e)
            return [(p.MODEL_ERROR, _error(e))]
        finally:
            self.out.call_done()
            replica_log.request_id = "-"
        return [(p.BAD_REQUEST, orjson.dumps({"error": {"code": "bad_request", "message": str(r)}}))
                if isinstance(r, Exception) else (p.OK, r) for r in results]

    def _memory_full(self, e: Exception) -> bool:
        if isinstance(e, MemoryError) and self.budget is not None and self.budget.full():
            self.out_of_memory = True
        return self.out_of_memory

    def _report(self, e: Exception) -> None:
        """A model's exception for the log, unless it is the replica running out of memory."""
        if not self._memory_full(e):
            self.tracebacks.report(e)

    def _memory_error(self) -> bytes:
        limit = self.cfg["memory_limit"] >> 20
        with contextlib.suppress(Exception):  # at the limit even a log line may not fit
            print(f"MemoryError: the replica reached its memory limit ({limit} MiB); exiting so that a fresh "
                  "one takes its place", file=sys.stderr)
        return orjson.dumps({"error": {"code": "model_error", "message":
                                       f"the replica reached its memory limit ({limit} MiB) and restarts"}})

    def infer_v2(self, payload: bytes) -> tuple[int, bytes]:
        """(status, payload) of one V2 request (its frame's payload: request id, then the body)."""
        from . import v2
        replica_log.request_id, body = p.split_request(payload)
        try:
            with self.model_lock:
                self.out.call_started()
                answer = v2.handle(self.scorer, body, *self.names, report=self._report)
            return (p.MODEL_ERROR, self._memory_error()) if self.out_of_memory else answer
        finally:
            self.out.call_done()
            replica_log.request_id = "-"

    def _handle(self, frames) -> None:
        """Answer `frames` into the outbox (the heartbeat thread sends what is there if a later
        model call hangs)."""
        out = self.out
        scores = [(rid, *p.split_request(payload)) for rid, kind, payload in frames if kind == p.SCORE]
        for rid, kind, body in frames:
            if kind == p.PING:  # answered with the resident memory, for backends that cannot read it
                out.add(p.frame(rid, p.PONG, out.pong()))
            elif kind == p.V2_INFER:
                out.add(p.frame(rid, *self.infer_v2(body)))
        for i in range(0, len(scores), self.max_batch):
            chunk = scores[i:i + self.max_batch]
            answers = self.score([body for _, _, body in chunk], [rid_ for _, rid_, _ in chunk])
            out.add(b"".join(p.frame(rid, status, payload)
                             for (rid, _, _), (status, payload) in zip(chunk, answers, strict=True)))
            if self.max_batch > 1:  # the server counts batch sizes (modelfleet_batch_size)
                out.add(p.frame(0, p.BATCH, len(chunk).to_bytes(2, "big")))

    def _recv(self, buf: bytearray) -> bool:
        data = self.sock.recv(65536)  # not larger: recv allocates its whole buffer every call
        if not data:
            return False
        buf += data
        return True

    def serve(self) -> None:
        buf = bytearray()
        while True:
            if not self._recv(buf):
                return
            frames = p.split_frames(buf)
            if self.max_batch > 1 and self.wait_s > 0:
                deadline = time.monotonic() + self.wait_s
                while sum(1 for f in frames if f[1] == p.SCORE) < self.max_batch:
                    left = deadline - time.monotonic()
                    if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                        break
                    if not self._recv(buf):
                        break
                    frames += p.split_frames(buf)
            if frames:
                self._handle(frames)
                self.out.flush()
                if self.out_of_memory:
                    return


def main() -> None:
    cfg = orjson.loads(os.environ["FLEET_REPLICA"])
    die_with_parent(f"mf:{cfg.get('deployment', '')}")
    run(cfg)


def serve_connection(cfg: dict, sock: socket.socket) -> bool:
    """Load the model, say READY (or INIT_FAILED with the traceback), then serve until EOF.
    False when the model could not be loaded. Used by replica processes."""
    replica = start_replica(cfg, sock)
    if replica is None:
        return False
    serve_until_closed(replica)
    return True


def serve_until_closed(replica: Replica) -> None:
    try:
        replica.serve()
    except (BrokenPipeError, ConnectionResetError):
        pass
    if replica.out_of_memory:  # only under a memory budget, which only replica processes have
        replica_log.finish()
        os._exit(p.EXIT_MEMORY_LIMIT)


def serve_another(loaded: Replica, sock: socket.socket) -> None:
    """Another server's connection to a replica already loaded (a Ray actor that every server's
    gateway reaches): READY at once, then the same model, its calls one at a time with every other
    connection's."""
    replica = Replica(loaded.cfg, sock)
    replica.scorer, replica.budget, replica.model_lock = loaded.scorer, loaded.budget, loaded.model_lock
    replica.out.start_heartbeats()
    replica.out.flush(p.frame(0, p.READY, to_json(loaded.ready_info)))
    replica.out.serving.set()
    with contextlib.suppress(OSError):
        serve_until_closed(replica)


def start_replica(cfg: dict, sock: socket.socket) -> Replica | None:
    """Load the model and say READY on `sock` (or INIT_FAILED with the traceback: None)."""
    if cfg.get("log_path"):
        replica_log.install(Path(cfg["log_path"]))
    replica = Replica(cfg, sock)
    started = time.monotonic()
    try:
        replica.out.start_heartbeats()
        replica.budget = memory.apply(cfg.get("memory_limit"))
        replica.load()
    except BaseException as e:
        tb = user_traceback(e)
        sys.stderr.write(tb)
        sys.stderr.flush()
        with contextlib.suppress(OSError):
            replica.out.flush(p.frame(0, p.INIT_FAILED, tb.encode()))
        return None
    load_ms = round((time.monotonic() - started) * 1000, 3)
    fast = getattr(replica.scorer, "fast_path", None)
    print(f"replica {cfg.get('replica_id')} ready in {load_ms:.0f} ms "
          f"(pid {os.getpid()})" + (f"; fast path: {fast['path']} ({fast['reason']})" if fast else ""), flush=True)
    replica.ready_info = {"pid": os.getpid(), "load_ms": load_ms, "metadata": replica.scorer.metadata,
                          "fast_path": fast}
    replica.out.flush(p.frame(0, p.READY, to_json(replica.ready_info)))
    replica.out.serving.set()
    return replica


def run(cfg: dict) -> None:
    """A replica process: serve the socket inherited as `fd`, then exit."""
    oom_priority(REPLICA_OOM_SCORE_ADJ)
    sock = socket.socket(fileno=int(cfg["fd"]))
    sock.setblocking(True)
    if not serve_connection(cfg, sock):
        sys.exit(1)
    # The server has let go of us: skip interpreter teardown (a fraction of a second with the
    # ML stack loaded), which only delays a rollout's stop of the old replicas.
    replica_log.finish()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
