"""Collection off the request path: rows named by the model's signature, Parquet per window,
samples dropped and counted (never raised) when the queue is full or the disk refuses."""

from __future__ import annotations

import datetime as dt
import time

import orjson
import pyarrow.parquet as pq

from modelfleet.collection.payload import PayloadCollector, PayloadSink
from modelfleet.collection.rows import convert, input_rows, output_rows
from modelfleet.collection.sink import Flusher, Sink, prune
from modelfleet.collection.windows import window_parts

NAMED = {"inputs": [{"name": "a", "datatype": "FP64", "shape": [-1]}, {"name": "b", "datatype": "FP64", "shape": [-1]}],
         "outputs": [{"name": "predict", "datatype": "INT64", "shape": [-1]}]}
MATRIX = {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, 2]}], "outputs": []}


def test_columns_are_named_by_the_signature_else_by_position():
    body = orjson.dumps({"data": [[1.0, 2.0], [3.0, 4.0]]})
    assert input_rows(body, NAMED) == [{"a": 1.0, "b": 2.0}, {"a": 3.0, "b": 4.0}]
    assert input_rows(body, MATRIX) == [{"0": 1.0, "1": 2.0}, {"0": 3.0, "1": 4.0}]
    assert input_rows(orjson.dumps({"input_data": [{"x": 1}]}), MATRIX) == [{"x": 1}]
    assert output_rows(b"[1, 0]", NAMED) == [{"predict": 1}, {"predict": 0}]
    assert output_rows(b"[[0.2, 0.8]]", {}) == [{"predict_0": 0.2, "predict_1": 0.8}]
    assert output_rows(b'{"label": [1, 2], "score": [0.5, 0.6]}', {}) == [{"label": 1, "score": 0.5},
                                                                          {"label": 2, "score": 0.6}]


def test_rows_land_in_parquet_per_window_with_the_request_id(tmp_path):
    sink = PayloadSink(tmp_path, "ep", "blue", rolling_rate="minute")
    collector = PayloadCollector(sink, {"model_inputs": 1.0, "model_outputs": 1.0, "request": 0.0}, ["x-user"])
    collector.offer("rid-1", orjson.dumps({"data": [[1.0, 2.0]]}), b"[1]", NAMED, {b"x-user": b"ann"})
    flusher = Flusher()
    flusher.flush_sink(sink)
    parts = window_parts(time.time(), "minute")
    files = list((tmp_path / "modelDataCollector/ep/blue/model_inputs").joinpath(*parts).glob("*.parquet"))
    assert len(files) == 1
    rows = pq.read_table(files[0]).to_pylist()
    assert rows[0]["correlationid"] == "rid-1" and rows[0]["a"] == 1.0 and rows[0]["header_x-user"] == "ann"
    assert rows[0]["time"].tzinfo is not None
    assert sink.rows == {"model_inputs": 1, "model_outputs": 1}
    assert not (tmp_path / "modelDataCollector/ep/blue/request").exists()   # sampled at 0


def test_a_full_queue_and_a_refused_write_drop_and_count(tmp_path):
    sink = PayloadSink(tmp_path, "ep", "blue", capacity=3)
    collector = PayloadCollector(sink, {"model_inputs": 1.0}, [])
    for i in range(5):
        collector.offer(f"r{i}", orjson.dumps({"data": [[1.0, 2.0]]}), b"[1]", NAMED, {})
    assert len(sink.queue) == 3 and sink.dropped["queue_full"] == 2
    (tmp_path / "modelDataCollector").write_text("not a folder")   # every write now fails
    Flusher().flush_sink(sink)
    assert sink.dropped["write_failed"] == 3 and sink.rows == {}
    collector.offer("bad", b"not json", b"[1]", NAMED, {})
    Flusher().flush_sink(sink)
    assert sink.dropped["unreadable"] == 1


def test_retention_removes_old_windows(tmp_path):
    sink = Sink(tmp_path, "ep", "blue", convert, rolling_rate="day", retention_days=2)
    flusher = Flusher()
    now = time.time()
    for age_days in (0, 1, 5):
        t = now - age_days * 86400
        sink.put((t, f"r{age_days}", orjson.dumps({"data": [[1.0, 2.0]]}), b"[1]", NAMED, None, ("model_inputs",), None))
    flusher.flush_sink(sink)
    assert prune(sink, now) == 1
    left = sorted(p.parent.name for p in (tmp_path / "modelDataCollector").rglob("*.parquet"))
    today = dt.datetime.fromtimestamp(now, dt.timezone.utc)
    assert f"{today.day:02d}" in left and len(left) == 2
