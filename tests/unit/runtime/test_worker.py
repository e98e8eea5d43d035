"""The shared worker's frame handling in process: register, score, evict by measured bytes, reload."""

from __future__ import annotations

import contextlib

import joblib
import numpy as np
import orjson
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from modelfleet.runtime import protocol as p, replica_log
from modelfleet.runtime.worker import ModelLogs, Worker

MiB = 2**20
ROWS = b'{"data": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}'


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Three iris models, each carrying 20 MiB of numbers (so its size in memory is known)."""
    root = tmp_path_factory.mktemp("models")
    X, y = load_iris(return_X_y=True)
    for name in ("a", "b", "c"):
        model = LogisticRegression(max_iter=1000).fit(X, y)
        model.padding_ = np.random.default_rng(0).random(20 * MiB // 8)
        (root / name).mkdir()
        joblib.dump(model, root / name / "model.joblib")
    (root / "broken").mkdir()
    (root / "broken" / "model.joblib").write_bytes(b"not a pickle")
    return root


class Lines:
    """The worker's own log, in memory."""
    def __init__(self):
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data


@contextlib.contextmanager
def routed(logs: ModelLogs):
    """Printed lines routed as in a worker process: to the model's log file, else the worker's."""
    with contextlib.redirect_stdout(replica_log.LineWriter(logs, 1)), \
            contextlib.redirect_stderr(replica_log.LineWriter(logs, 2)):
        yield


def _config(models, name: str, tmp_path, **extra) -> bytes:
    return orjson.dumps({"endpoint": f"ep-{name}", "deployment": "blue", "replica_id": name, "model_type": "sklearn",
                         "model_dir": str(models / name), "scoring_script": None, "max_batch_size": 1,
                         "max_batch_wait_ms": 2.0, "log_path": str(tmp_path / f"{name}.log"), **extra})


def _run(worker: Worker, *frames: bytes) -> list[tuple[int, int, str, bytes]]:
    """Hand `frames` to the worker; its answers as (id, kind, key or "", rest of the payload)."""
    worker.handle(p.split_frames(bytearray(b"".join(frames))))
    answers = p.split_frames(bytearray(b"".join(worker.out.frames)))
    worker.out.frames.clear()
    out = []
    for rid, kind, payload in answers:
        key, rest = p.split_key(payload) if kind >= p.LOAD else ("", payload)
        out.append((rid, kind, key, rest))
    return out


def _load(rid: int, key: str, config: bytes) -> bytes:
    return p.frame(rid, p.LOAD, p.keyed(key.encode(), config))


def _score(rid: int, key: str) -> bytes:
    return p.keyed_request_frame(rid, p.MODEL_SCORE, key.encode(), b"req-1", ROWS)


def test_register_score_and_unregister(models, tmp_path):
    w = Worker({"memory_budget": 1 << 30, "worker_id": 1}, None)
    [(rid, kind, key, info)] = _run(w, _load(1, "a", _config(models, "a", tmp_path)))
    # measured around the load: the 20 MiB it holds, give or take what the process freed meanwhile
    assert (rid, kind, key) == (1, p.LOADED, "a") and orjson.loads(info)["bytes"] >= 19 * MiB
    assert _run(w, _score(2, "a"), _score(3, "a")) == [(2, p.OK, "", b"[0,2]"), (3, p.OK, "", b"[0,2]")]
    assert _run(w, _score(4, "nope")) == [(4, p.UNKNOWN_MODEL, "nope", b"")]
    assert _run(w, p.frame(5, p.UNLOAD, p.keyed(b"a")), _score(6, "a")) == \
        [(5, p.UNLOADED, "a", b""), (6, p.UNKNOWN_MODEL, "a", b"")]


def test_the_least_recently_used_model_is_evicted_by_bytes_and_reloads_on_demand(models, tmp_path):
    logs = ModelLogs(Lines())
    w = Worker({"memory_budget": 50 * MiB, "worker_id": 1}, None, logs)   # room for two of the three
    with routed(logs):
        _evictions(w, models, tmp_path)
    log = (tmp_path / "b.log").read_text()   # each model's lines in its own log (what get-logs reads)
    assert "evicted" in log and "on demand after an eviction" in log and "[-]" in log
    assert logs.own.data == b""


def _evictions(w: Worker, models, tmp_path) -> None:
    _run(w, _load(1, "a", _config(models, "a", tmp_path)), _load(2, "b", _config(models, "b", tmp_path)))
    assert w.budget.loaded() == ["a", "b"]
    _run(w, _score(3, "a"))                                          # a used last: b is the oldest now
    answers = _run(w, _load(4, "c", _config(models, "c", tmp_path)))
    assert [(k, key) for _, k, key, _ in answers] == [(p.EVICTED, "b"), (p.LOADED, "c")]
    answers = _run(w, _score(5, "b"))                                # b comes back, a (oldest) goes
    assert [(rid, k, key) for rid, k, key, _ in answers] == \
        [(0, p.EVICTED, "a"), (0, p.LOADED, "b"), (5, p.OK, "")]
    assert w.budget.loaded() == ["c", "b"] and w.budget.used <= 50 * MiB
    assert orjson.loads(w.stats())["frees"] == 2


def test_a_model_that_does_not_load_is_not_registered(models, tmp_path):
    w = Worker({"memory_budget": 1 << 30, "worker_id": 1}, None)
    [(rid, kind, key, tb)] = _run(w, _load(1, "broken", _config(models, "broken", tmp_path)))
    assert (rid, kind, key) == (1, p.LOAD_FAILED, "broken") and b"Traceback" in tb
    assert "broken" not in w.models and "Traceback" in (tmp_path / "broken.log").read_text()


def test_a_lazy_registration_loads_on_the_first_request(models, tmp_path):
    w = Worker({"memory_budget": 1 << 30, "worker_id": 1}, None)
    [(_, kind, _, info)] = _run(w, _load(1, "a", _config(models, "a", tmp_path, lazy=True)))
    assert kind == p.LOADED and orjson.loads(info)["bytes"] is None and "a" not in w.budget
    assert [k for _, k, _, _ in _run(w, _score(2, "a"))] == [p.LOADED, p.OK]
