"""The server's collection writer process (collection/writer.py) fed by its client: every entry
offered is written once, through a writer that dies mid-stream and a disk that refuses writes;
V2 tensors collected as rows. The writer tests start a real writer process."""

from __future__ import annotations

import os
import signal

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
