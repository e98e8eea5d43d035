"""The server's collection writer process (collection/writer.py) fed by its client: every entry
offered is written once, through a writer that dies between batches or halfway through writing
one and a disk that refuses writes; V2 tensors collected as rows. The writer tests start a real
writer process."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import orjson
import pyarrow.parquet as pq
import pytest

from modelfleet.collection.payload import PayloadCollector, PayloadSink
from modelfleet.collection.rows import convert
from modelfleet.collection.writer_client import WriterProcess
from modelfleet.runtime.v2 import response

NAMED = {"inputs": [{"name": "a", "datatype": "FP64", "shape": [-1]}, {"name": "b", "datatype": "FP64", "shape": [-1]}],
         "outputs": [{"name": "predict", "datatype": "INT64", "shape": [-1]}]}
BODY = orjson.dumps({"data": [[1.0, 2.0]]})


def _written(root, collection: str) -> list[dict]:
    rows = []
    for f in sorted((root / "modelDataCollector/ep/blue" / collection).rglob("*.parquet")):
        rows += pq.read_table(f).to_pylist()
    return rows


def _collector(root) -> tuple[PayloadSink, PayloadCollector]:
    sink = PayloadSink(root, "ep", "blue")
    return sink, PayloadCollector(sink, {"model_inputs": 1.0, "model_outputs": 1.0}, [])


@pytest.mark.slow
def test_every_entry_is_written_once_through_a_writer_that_dies(tmp_path):
    writer = WriterProcess(tmp_path, every_s=3600)   # flushed by the test, not the clock
    sink, collector = _collector(tmp_path)
    writer.sinks[("ep", "blue")] = sink
    try:
        for i in range(300):
            collector.offer(f"r{i}", BODY, b"[1]", NAMED, {})
        writer.flush()
        first = writer.pid
        os.kill(first, signal.SIGKILL)            # dead before the next batch
        for i in range(300, 500):
            collector.offer(f"r{i}", BODY, b"[1]", NAMED, {})
        writer.flush()
        assert writer.pid != first and writer.restarts == 1
        for i in range(500, 600):
            collector.offer(f"r{i}", BODY, b"[1]", NAMED, {})
    finally:
        writer.stop()                             # writes what is queued, ends the process
    assert writer.pid is None
    ids = [r["correlationid"] for r in _written(tmp_path, "model_inputs")]
    assert sorted(ids) == sorted(f"r{i}" for i in range(600))
    assert sink.rows == {"model_inputs": 600, "model_outputs": 600} and not sink.dropped


def _parts(root) -> dict[str, int]:
    """Every Parquet file written (name -> inode), and no temporary ones."""
    return {str(p.relative_to(root)): p.stat().st_ino for p in (root / "modelDataCollector").rglob("*parquet*")}


@pytest.mark.slow
def test_a_writer_killed_halfway_through_a_batch_is_replaced_by_one_that_writes_the_same_files(tmp_path):
    """Forty deployments' entries in one batch: the writer is killed once some of their files are
    written and not all; the batch sent again replaces those files under the same names, writes
    the rest, and every row is there once."""
    writer = WriterProcess(tmp_path, every_s=3600)
    sinks = {}
    for d in range(40):
        sink = sinks[d] = PayloadSink(tmp_path, "ep", f"d{d:02d}")
        writer.sinks[("ep", sink.deployment)] = sink
    collectors = {d: PayloadCollector(sink, {"model_inputs": 1.0, "model_outputs": 1.0}, []) for d, sink in sinks.items()}
    try:
        collectors[0].offer("warm-up", BODY, b"[1]", NAMED, {})
        writer.flush()                      # the writer is up, pyarrow imported
        kills = 0
        for attempt in range(5):
            before = _parts(tmp_path)
            for d, c in collectors.items():
                for i in range(400):
                    c.offer(f"a{attempt}-d{d}-r{i}", BODY, b"[1]", NAMED, {})
            pid, seen = writer.pid, {}
            flushing = threading.Thread(target=writer.flush)
            flushing.start()
            deadline = time.monotonic() + 60
            while flushing.is_alive() and time.monotonic() < deadline:   # the first file of this batch
                seen = {k: v for k, v in _parts(tmp_path).items() if k not in before and k.endswith(".parquet")}
                if seen:
                    os.kill(pid, signal.SIGKILL)
                    kills += 1
                    break
            flushing.join(timeout=60)
            assert not flushing.is_alive()
            after = _parts(tmp_path)
            new = {k: v for k, v in after.items() if k not in before}
            if seen and len(seen) < len(new):   # killed halfway: some files written, not all
                break
        else:
            pytest.fail("the writer finished every batch before it could be killed halfway")
        assert writer.restarts == kills and writer.pid != pid
        assert all(not k.endswith(".tmp") for k in after)                 # nothing half written is left
        assert all(after[k] != ino for k, ino in seen.items())             # the same names, written again
        assert len({tuple(k.rsplit("/", 1)[1].split("-")[2:4]) for k in new}) == 1   # all named by the one batch
        for collection in ("model_inputs", "model_outputs"):
            ids = [r["correlationid"] for f in (tmp_path / "modelDataCollector/ep").glob(f"*/{collection}/**/*.parquet")
                   for r in pq.read_table(f, columns=["correlationid"]).to_pylist()]
            mine = sorted(i for i in ids if i.startswith(f"a{attempt}-"))
            assert mine == sorted(f"a{attempt}-d{d}-r{i}" for d in sinks for i in range(400))
        assert all(s.rows[c] >= 400 for s in sinks.values() for c in ("model_inputs", "model_outputs"))
        assert not any(s.dropped for s in sinks.values())
    finally:
        writer.stop()
    assert writer.pid is None


@pytest.mark.slow
def test_a_disk_that_refuses_drops_and_counts_then_collection_resumes(tmp_path):
    writer = WriterProcess(tmp_path, every_s=3600)
    sink, collector = _collector(tmp_path)
    writer.sinks[("ep", "blue")] = sink
    try:
        (tmp_path / "modelDataCollector").write_text("not a folder")   # every write fails
        for i in range(50):
            collector.offer(f"lost{i}", BODY, b"[1]", NAMED, {})
        writer.flush()
        assert sink.dropped == {"write_failed": 100} and not sink.rows
        (tmp_path / "modelDataCollector").unlink()
        for i in range(50):
            collector.offer(f"kept{i}", BODY, b"[1]", NAMED, {})
        writer.flush()
        assert sink.rows == {"model_inputs": 50, "model_outputs": 50}
    finally:
        writer.stop()
    assert len(_written(tmp_path, "model_outputs")) == 50


def test_v2_requests_are_collected_as_rows_of_their_tensors():
    one = orjson.dumps({"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP64", "data": [1, 2, 3, 4]}]})
    answer = response([("predict", np.array([0, 1])), ("proba", np.array([[0.2, 0.8], [0.6, 0.4]]))], {}, {}, "m", "1")
    wanted = ("model_inputs", "model_outputs", "request", "response")
    out = convert((1.0, "rid", one, answer, NAMED, None, wanted, 0))
    assert [{k: r[k] for k in ("a", "b")} for r in out["model_inputs"]] == [{"a": 1.0, "b": 2.0}, {"a": 3.0, "b": 4.0}]
    assert [{k: v for k, v in r.items() if k not in ("correlationid", "time")} for r in out["model_outputs"]] == [
        {"predict": 0, "proba_0": 0.2, "proba_1": 0.8}, {"predict": 1, "proba_0": 0.6, "proba_1": 0.4}]
    assert orjson.loads(out["request"][0]["data"])["inputs"][0]["name"] == "x"
    assert orjson.loads(out["response"][0]["data"])["model_name"] == "m"
    # several named inputs, one binary: a column each; the request's text is its JSON header
    header = orjson.dumps({"inputs": [{"name": "a", "shape": [2], "datatype": "FP64", "data": [1, 2]},
                                      {"name": "s", "shape": [2], "datatype": "FP32",
                                       "parameters": {"binary_data_size": 8}}]})
    body = header + np.array([5, 6], "<f4").tobytes()
    out = convert((1.0, "rid", body, answer, {}, None, ("model_inputs", "request"), len(header)))
    assert [(r["a"], r["s"]) for r in out["model_inputs"]] == [(1.0, 5.0), (2.0, 6.0)]
    assert out["request"][0]["data"] == header.decode()
