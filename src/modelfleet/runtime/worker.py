"""A shared multi-model worker: many no-code models in one process, kept within a memory budget.

Forked from the zygote like a replica, with one socket to the server carrying the replica's
frames with a model key in front (runtime/protocol.py):

    LOAD key+config      register the model and load it (unless "lazy"); answered LOADED (time,
                         bytes) or LOAD_FAILED
    MODEL_SCORE key+...  as SCORE for that model (loaded first if it was evicted)
    MODEL_V2 key+...     as V2_INFER
    UNLOAD key           forget the model and free its memory; answered UNLOADED
    PING                 answered PONG, then WORKER_STATS: its memory (rss, baseline, used, ...)

As in a replica, a second thread sends heartbeats (PONG, id 0) with how long the current model
call has run (runtime/heartbeat.py), so a slow model is told apart from a hung worker.

Each model's size is measured around its load: the larger of the growth of the heap in use
(glibc's malloc, which numpy and native libraries allocate from, plus Python's small-object
blocks) and the growth of resident memory. Both are read in microseconds, so measuring costs a
reload nothing (tracemalloc would multiply a small model's load time by five). When the loaded models' sizes pass the budget, the least recently used are
evicted (runtime/model_budget.py) and the server is told (EVICTED); asked for again, a model
reloads transparently and the server hears LOADED with id 0. Freed memory goes back to the
operating system once the worker is idle (gc, then malloc_trim).

Lines printed while a model loads or scores go to that model's own log (what `get-logs` of its
deployment reads); the rest to the worker's log.
"""

from __future__ import annotations

import gc
import os
import select
import socket
import sys
import time
import traceback
from pathlib import Path

import orjson

from ..files.fsutil import size_on_disk
from . import fast_path, protocol as p, replica_log
from .loaders import to_json
from .user_errors import user_traceback
from .heartbeat import Outbox
from .memory import heap_bytes, malloc_trim, rss_bytes
from .model_budget import LruBudget
from .replica import REPLICA_OOM_SCORE_ADJ, Replica, oom_priority

TRIM_WHEN_IDLE_S = 0.05   # after an eviction, give memory back once no request came for this long
# Libraries a model type needs, imported before its first load so that their memory counts as
# the worker's own rather than as the first model's.
TYPE_IMPORTS = {"sklearn": ("joblib",), "onnx": ("onnxruntime",), "mlflow": ("mlflow.pyfunc", "pandas")}
FAST_PATH_TYPES = ("sklearn", "mlflow")   # their first load converts: the converter is loaded first



class ModelLogs:
    """Where a printed line goes: the log of the model being loaded or scored, else the worker's."""

    def __init__(self, own: replica_log.RotatingFile):
        self.own = own
        self.current: Path | None = None

    def write(self, data: bytes) -> None:
        if self.current is None:
            self.own.write(data)
            return
        try:
            replica_log.append(self.current, data)
        except OSError:
            pass  # a full or read-only disk loses log lines, never the worker


class Model:
    """One registered model: its configuration, its scorer while loaded (a Replica without a
    socket of its own), and what its last load cost."""

    def __init__(self, key: str, cfg: dict, out: Outbox):
        self.key = key
        self.replica = Replica(cfg, None)
        self.replica.out = out
        self.log_path = Path(cfg["log_path"]) if cfg.get("log_path") else None
        self.disk_bytes = size_on_disk(Path(cfg["model_dir"]))
        self.load_ms = 0.0

    @property
    def batching(self) -> bool:
        return self.replica.max_batch > 1 and self.replica.wait_s > 0


class Worker:
    def __init__(self, cfg: dict, sock: socket.socket | None, logs: ModelLogs | None = None):
        self.sock = sock
        self.out = Outbox(sock)   # shared with the heartbeat thread; every model's calls count as busy
        self.name = f"shared worker {cfg.get('worker_id', '?')} (pid {os.getpid()})"
        self.budget = LruBudget(int(cfg["memory_budget"]))
        self.models: dict[str, Model] = {}
        self.logs = logs
        self.baseline = (rss_bytes() or 0)   # before any model; grows by the libraries model types import
        self.frees = 0                # evictions and unloads: memory that should have gone back
        self.batching = 0             # registered models that wait to gather a batch
        self.dirty = False            # memory freed and not yet given back to the system
        self._imported: set[str] = set()

    # -- loading and evicting -------------------------------------------------------------------

    def _as(self, model: Model | None) -> None:
        """Send printed lines to `model`'s log (None: the worker's own)."""
        if self.logs is not None:
            self.logs.current = model.log_path if model is not None else None

    def _import_for(self, model_type: str) -> None:
        if model_type in self._imported:
            return
        before = (rss_bytes() or 0)
        for name in TYPE_IMPORTS.get(model_type, ()):
            try:
                __import__(name)
            except ImportError:
                pass  # the load reports it
        if model_type in FAST_PATH_TYPES:
            fast_path.warm()
        self._imported.add(model_type)
        self.baseline += max(0, (rss_bytes() or 0) - before)

    def load(self, model: Model, why: str) -> None:
        """Load `model`, evicting others first if it would not fit; raises what the load raised."""
        key = model.key
        estimate = self.budget.size(key) or model.disk_bytes
        self._evict(self.budget.make_room(key, estimate))
        self._import_for(model.replica.cfg["model_type"])
        self._as(model)
        try:
            rss, heap = (rss_bytes() or 0), heap_bytes()
            started = time.monotonic()
            model.replica.load()
            model.load_ms = round((time.monotonic() - started) * 1000, 3)
            size = max(heap_bytes() - heap, (rss_bytes() or 0) - rss, 0)
            what = f"reloaded in {model.load_ms:.0f} ms" if why else \
                f"replica {model.replica.cfg.get('replica_id')} ready in {model.load_ms:.0f} ms"
            fast = getattr(model.replica.scorer, "fast_path", None)
            print(f"{what} ({size / 2**20:.1f} MiB, in {self.name}){why}"
                  + (f"; fast path: {fast['path']} ({fast['reason']})" if fast else ""), flush=True)
        finally:
            self._as(None)
        self._evict(self.budget.add(key, size))
        # A loaded model lives long: out of the collector's sight, so that a full collection under
        # load walks only what requests leave behind, not every model (~100 ms at 500 models)
        gc.freeze()

    def _evict(self, keys: list[str]) -> None:
        for key in keys:
            model = self.models.get(key)
            if model is None:
                continue
            model.replica.scorer = None
            self.frees += 1
            self.dirty = True
            self._as(model)
            print(f"evicted: the loaded models passed {self.name}'s memory budget "
                  f"({self.budget.budget / 2**20:.0f} MiB); it reloads on its next request", flush=True)
            self._as(None)
            self.out.add(p.frame(0, p.EVICTED, p.keyed(key.encode(), self.stats())))

    def release_memory(self) -> None:
        """Give freed memory back to the system (run when idle: a full collection takes a while),
        cycles frozen with the models included."""
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        malloc_trim()
        self.dirty = False

    def stats(self) -> bytes:
        return orjson.dumps({"rss": (rss_bytes() or 0), "baseline": self.baseline, "used": self.budget.used,
                             "budget": self.budget.budget, "loaded": len(self.budget),
                             "registered": len(self.models), "frees": self.frees})

    # -- frames ---------------------------------------------------------------------------------

    def _register(self, rid: int, payload: bytes) -> None:
        key, config = p.split_key(payload)
        kb = key.encode()
        if key in self.models:
            self._forget(key)
        try:
            cfg = orjson.loads(config)
            model = Model(key, cfg, self.out)
            self.models[key] = model
            self.batching += model.batching
            if not cfg.get("lazy"):   # lazy: moved from a worker where it was not loaded either
                self.load(model, "")
        except BaseException as e:
            self._forget(key)
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            tb = user_traceback(e)
            log_path = orjson.loads(config).get("log_path") if config else None
            if log_path:
                replica_log.append(Path(log_path), tb.encode())
            self.out.add(p.frame(rid, p.LOAD_FAILED, p.keyed(kb, tb.encode())))
            return
        scorer = model.replica.scorer   # its V2 tensors, for the model's metadata (lazy: not known yet)
        self.out.add(p.frame(rid, p.LOADED, p.keyed(kb, to_json({"ms": model.load_ms, "bytes": self.budget.size(key),
                                                                 "metadata": scorer.metadata if scorer else None,
                                                                 "fast_path": getattr(scorer, "fast_path", None)}))))

    def _forget(self, key: str) -> None:
        model = self.models.pop(key, None)
        if model is not None:
            self.batching -= model.batching
            if self.budget.remove(key):
                self.frees += 1
                self.dirty = True
            model.replica.scorer = None

    def _unregister(self, rid: int, payload: bytes) -> None:
        key, _ = p.split_key(payload)
        self._forget(key)
        self.out.add(p.frame(rid, p.UNLOADED, p.keyed(key.encode())))

    def _ready(self, model: Model) -> Exception | None:
        """Load `model` if it was evicted; the error if it could not be."""
        if model.key in self.budget:
            self.budget.touch(model.key)
            return None
        try:
            self.load(model, ", on demand after an eviction")
        except Exception as e:
            self._as(model)
            traceback.print_exc()
            self._as(None)
            return e
        self.out.add(p.frame(0, p.LOADED, p.keyed(model.key.encode(), orjson.dumps(
            {"ms": model.load_ms, "bytes": self.budget.size(model.key)}))))
        return None

    def _failed(self, rids: list[int], key: str, failed: Exception | None) -> bool:
        """Answer `rids` at once if the model is not registered or could not be loaded."""
        if key not in self.models:
            self.out.add(b"".join(p.frame(rid, p.UNKNOWN_MODEL, p.keyed(key.encode())) for rid in rids))
        elif failed is not None:
            err = orjson.dumps({"error": {"code": "model_error", "message":
                                          f"the model could not be loaded: {type(failed).__name__}: {failed}"}})
            self.out.add(b"".join(p.frame(rid, p.MODEL_ERROR, err) for rid in rids))
        else:
            return False
        return True

    def _score(self, key: str, items: list[tuple[int, str, bytes]]) -> None:
        """Answer `items` (id, request id, body) for one model, in batches when it batches."""
        model = self.models.get(key)
        if self._failed([rid for rid, _, _ in items], key, model and self._ready(model)):
            return
        step = model.replica.max_batch
        self._as(model)
        try:
            for i in range(0, len(items), step):
                chunk = items[i:i + step]
                answers = model.replica.score([body for _, _, body in chunk], [r for _, r, _ in chunk])
                self.out.add(b"".join(p.frame(rid, status, payload)
                                      for (rid, _, _), (status, payload) in zip(chunk, answers, strict=True)))
                if step > 1:
                    self.out.add(p.frame(0, p.MODEL_BATCH, p.keyed(key.encode(), len(chunk).to_bytes(2, "big"))))
        finally:
            self._as(None)

    def _v2(self, rid: int, payload: bytes) -> None:
        key, rest = p.split_key(payload)
        model = self.models.get(key)
        if self._failed([rid], key, model and self._ready(model)):
            return
        self._as(model)
        try:
            self.out.add(p.frame(rid, *model.replica.infer_v2(rest)))
        finally:
            self._as(None)

    def handle(self, frames: list[tuple[int, int, bytes]]) -> None:
        """Answer `frames` into the outbox (the heartbeat thread sends what is there if a later
        model call hangs). Scoring requests are grouped by model (a batch per model); LOAD and
        UNLOAD take effect in order with the requests around them."""
        scores: dict[str, list[tuple[int, str, bytes]]] = {}

        def flush() -> None:
            for key, items in scores.items():
                self._score(key, items)
            scores.clear()

        for rid, kind, payload in frames:
            if kind == p.MODEL_SCORE:
                key, rest = p.split_key(payload)
                scores.setdefault(key, []).append((rid, *p.split_request(rest)))
            elif kind == p.PING:   # liveness, and the worker's memory for the pool
                self.out.add(p.frame(rid, p.PONG, self.out.pong()) + p.frame(0, p.WORKER_STATS, self.stats()))
            elif kind == p.MODEL_V2:
                self._v2(rid, payload)
            elif kind == p.LOAD:
                flush()
                self._register(rid, payload)
            elif kind == p.UNLOAD:
                flush()
                self._unregister(rid, payload)
        flush()

    # -- the loop -------------------------------------------------------------------------------

    def _recv(self, buf: bytearray) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        buf += data
        return True

    def _wants_more(self, frames: list) -> float:
        """How long to wait for more requests: the shortest batching wait among the models that
        have requests here and fewer than a full batch (0: none)."""
        if not self.batching:
            return 0.0
        counts: dict[str, int] = {}
        for _, kind, payload in frames:
            if kind == p.MODEL_SCORE:
                key = p.split_key(payload)[0]
                counts[key] = counts.get(key, 0) + 1
        waits = [m.replica.wait_s for key, n in counts.items()
                 if (m := self.models.get(key)) is not None and m.batching and n < m.replica.max_batch]
        return min(waits, default=0.0)

    def serve(self) -> None:
        buf = bytearray()
        while True:
            if self.dirty and not select.select([self.sock], [], [], TRIM_WHEN_IDLE_S)[0]:
                self.release_memory()
                continue
            if not self._recv(buf):
                return
            frames = p.split_frames(buf)
            wait = self._wants_more(frames)
            if wait:
                deadline = time.monotonic() + wait
                while (left := deadline - time.monotonic()) > 0 and select.select([self.sock], [], [], left)[0]:
                    if not self._recv(buf):
                        break
                    frames += p.split_frames(buf)
                    if not self._wants_more(frames):
                        break
            if frames:
                self.handle(frames)
                self.out.flush()


def run(cfg: dict) -> None:
    """The worker process: serve the socket inherited as `fd` until the server closes it."""
    oom_priority(REPLICA_OOM_SCORE_ADJ)
    sock = socket.socket(fileno=int(cfg["fd"]))
    sock.setblocking(True)
    logs = None
    if cfg.get("log_path"):
        own = replica_log.install(Path(cfg["log_path"]))
        logs = ModelLogs(own)
        sys.stdout = replica_log.LineWriter(logs, 1)
        sys.stderr = replica_log.LineWriter(logs, 2)
    worker = Worker(cfg, sock, logs)
    print(f"{worker.name} started, memory budget {worker.budget.budget / 2**20:.0f} MiB", flush=True)
    try:
        worker.out.start_heartbeats()
        worker.out.flush(p.frame(0, p.WORKER_READY, orjson.dumps({"pid": os.getpid(), "rss": worker.baseline})))
        worker.out.serving.set()
        worker.serve()
    except (BrokenPipeError, ConnectionResetError):
        pass
    replica_log.finish()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
