"""A batch of payload entries written as columns (collection/columns.py) gives the tables that
writing each entry's rows (rows.convert, the row dicts written before) gives: for rows of one
width named or by position, several rows a request, rows as objects, mixed widths, predictions of
every shape, captured headers, unreadable requests, sampling, a feature named like a base column,
windows that change inside the batch, a rollout inside the batch; a column that cannot be one
Arrow type is dropped and counted as unreadable (it took writers down before)."""

from __future__ import annotations

import time

import orjson
import pytest

from modelfleet.collection.columns import Batch, groups_of, tables, write_packed
from modelfleet.collection.payload import PayloadCollector, PayloadSink
from modelfleet.collection.rows import convert
from modelfleet.collection.sink import Written, group_rows, rows_table

NAMED = {"inputs": [{"name": "a", "datatype": "FP64", "shape": [-1]}, {"name": "b", "datatype": "FP64", "shape": [-1]}],
         "outputs": [{"name": "label", "datatype": "INT64", "shape": [-1]}]}
BOTH = {"model_inputs": 1.0, "model_outputs": 1.0}


def body(rows) -> bytes:
    return orjson.dumps({"data": rows})


def tables_of(sink: PayloadSink, entries: list[tuple], rolling_rate: str = "hour") -> tuple[tuple, tuple]:
    """(columns' tables, the row dicts' tables) by (collection, window), and what each dropped."""
    batch = Batch(sink.pack(entries))
    fast, slow = Written(), Written()
    got = groups_of(batch, rolling_rate, fast.dropped)
    want = group_rows([batch.entry(i) for i in range(batch.n)], convert, rolling_rate, slow.dropped)
    return ({k: rows_table(v) if isinstance(v, list) else v for k, v in got.items()},
            {k: rows_table(v) for k, v in want.items()}), (fast.dropped, slow.dropped)


def check(sink: PayloadSink, rolling_rate: str = "hour", columns: bool = True) -> dict:
    """The two ways agree; `columns`: the batch is of the shapes written as columns."""
    entries = sink.drain()
    batch = Batch(sink.pack(entries))
    assert (batch.v2 is None and batch.generations is None and tables(batch, rolling_rate, Written().dropped)
            is not None) == columns
    (got, want), (dropped, expected) = tables_of(sink, entries, rolling_rate)
    assert set(got) == set(want)   # the order (the files' index in their names) may differ
    for key in want:
        assert got[key].schema == want[key].schema, key
        assert got[key].equals(want[key]), (key, got[key].to_pylist()[:3], want[key].to_pylist()[:3])
    assert dropped == expected
    return got


def offer(collector: PayloadCollector, bodies_answers, metadata=NAMED, headers=None) -> None:
    for i, (b, a) in enumerate(bodies_answers):
        collector.offer(f"r{i}", b, a, metadata, headers(i) if headers else {})


@pytest.fixture
def sink(tmp_path):
    return PayloadSink(tmp_path, "ep", "blue")


def test_rows_of_one_width_named_or_by_position(sink):
    c = PayloadCollector(sink, BOTH, [])
    offer(c, [(body([[1.0, 2.0 + i]]), b"[1]") for i in range(50)])
    got = check(sink)
    table = next(t for (name, _), t in got.items() if name == "model_inputs")
    assert table.column_names == ["correlationid", "time", "a", "b"] and table.num_rows == 50
    offer(c, [(body([[1, 2, 3]]), b"[[0.2, 0.8]]") for _ in range(5)], metadata={})   # wider than the names: by position
    got = check(sink)
    assert [t.column_names for t in got.values()] == [["correlationid", "time", "0", "1", "2"],
                                                      ["correlationid", "time", "predict_0", "predict_1"]]
    offer(c, [(body([[1, 2, 3]]), b"[1]")], metadata=NAMED)   # a, b, then "2"
    check(sink)


def test_several_rows_a_request_objects_and_mixed_widths(sink):
    c = PayloadCollector(sink, BOTH, [])
    offer(c, [(body([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]), b"[0, 1, 0]"), (body([[7.0, 8.0]]), b"[1]")])
    check(sink)
    offer(c, [(orjson.dumps({"input_data": [{"x": 1, "y": "u"}]}), b'{"predictions": [1]}'),
              (orjson.dumps({"input_data": {"columns": ["x", "y"], "data": [[2, "v"]]}}), b"[2]")])
    check(sink, columns=False)
    offer(c, [(body([[1.0, 2.0]]), b"[1]"), (body([[1.0, 2.0, 3.0]]), b"[[1, 2]]"), (body([1.0, 2.0]), b"7")])
    check(sink, columns=False)


def test_predictions_of_every_shape(sink):
    c = PayloadCollector(sink, {"model_outputs": 1.0}, [])
    for answer, columns in ((b'["setosa"]', True), (b'{"predictions": [[0.1, 0.9]]}', True), (b"3.5", True),
                            (b"[]", True), (b"[null]", True), (b'{"label": [1, 2], "score": [0.5, 0.6]}', False),
                            (b'{"label": 1}', False), (b'{"outputs": [{"k": 1}]}', False)):
        offer(c, [(body([[1.0, 2.0]]), answer)] * 3)
        check(sink, columns=columns)


def test_captured_headers_sampling_and_request_text(sink):
    c = PayloadCollector(sink, {"model_inputs": 1.0, "model_outputs": 0.5, "request": 0.5, "response": 1.0},
                         ["x-user", "x-team"])
    offer(c, [(body([[1.0, float(i)]]), b"[1]") for i in range(200)],
          headers=lambda i: {b"x-user": f"u{i}".encode()} | ({b"x-team": b"t"} if i % 3 else {}))
    got = check(sink)
    assert {name for name, _ in got} == {"model_inputs", "model_outputs", "request", "response"}
    # the first request without a header: as before, the columns are the first row's
    offer(c, [(body([[1.0, 2.0]]), b"[1]") for _ in range(5)], headers=lambda i: {b"x-user": b"u"} if i else {})
    check(sink)


def test_unreadable_requests_are_dropped_whole(sink):
    c = PayloadCollector(sink, {"model_inputs": 1.0, "request": 1.0}, [])
    offer(c, [(body([[1.0, 2.0]]), b"[1]"), (b"not json", b"[1]"), (orjson.dumps({"rows": [1]}), b"[1]"),
              (body([[3.0, 4.0]]), b"[1]")])
    got = check(sink)
    assert sum(t.num_rows for t in got.values()) == 4 and sink.rows == {}
    offer(c, [(body([[1.0, 2.0]]), b"[1]"), (body([[1.0, 2.0], 3]), b"[1]")])   # a row that is no row
    check(sink, columns=False)


def test_a_feature_named_like_a_base_or_header_column(sink):
    c = PayloadCollector(sink, BOTH, ["x-user"])
    named = {"inputs": [{"name": "time", "shape": [-1]}, {"name": "header_x-user", "shape": [-1]}], "outputs": []}
    offer(c, [(body([[1.0, 2.0]]), b"[1]")] * 3, metadata=named)
    check(sink, columns=False)
    offer(c, [(body([[1.0, 2.0]]), b"[1]")] * 3, metadata={"inputs": [{"name": "a", "shape": [-1]},
                                                                      {"name": "header_x-user", "shape": [-1]}]},
          headers=lambda i: {b"x-user": b"u"})
    check(sink, columns=False)


def test_windows_that_change_inside_a_batch(sink):
    c = PayloadCollector(sink, BOTH, [])
    offer(c, [(body([[1.0, 2.0]]), b"[1]")] * 4)
    now = time.time()
    entries = sink.drain()
    entries = [(now - 90 * k, *e[1:]) for k, e in enumerate(entries)]   # four minutes
    sink.queue.extend(entries)
    got = check(sink, "minute")
    assert len(got) == 8


def test_a_rollout_inside_a_batch_names_each_request_by_its_model(sink):
    c = PayloadCollector(sink, BOTH, [])
    renamed = {"inputs": [{"name": "c", "shape": [-1]}, {"name": "d", "shape": [-1]}], "outputs": []}
    offer(c, [(body([[1.0, 2.0]]), b"[1]")] * 2, metadata=NAMED)
    offer(c, [(body([[1.0, 2.0]]), b"[1]")] * 2, metadata=renamed)
    check(sink, columns=False)
    offer(c, [(body([[1.0, 2.0]]), b"[1]")], metadata=renamed)
    got = check(sink)
    assert list(sink.metadatas) == [2]   # the first signature is gone with its requests
    assert next(t for (name, _), t in got.items() if name == "model_inputs").column_names[2:] == ["c", "d"]


def test_the_same_batch_writes_the_same_files(sink, tmp_path):
    c = PayloadCollector(sink, BOTH, [])
    offer(c, [(body([[1.0, 2.0]]), b"[1]")] * 10)
    packed = sink.pack(sink.drain())
    first = write_packed(sink, packed, "t")
    again = write_packed(sink, packed, "t")
    assert first.files == again.files and len(first.files) == 2 and first.rows == {"model_inputs": 10, "model_outputs": 10}
    assert sorted(p.name for p in tmp_path.rglob("*.parquet")) == sorted(p.name for p in first.files)


def test_a_column_of_values_of_no_one_type_is_dropped_and_counted(sink):
    c = PayloadCollector(sink, BOTH, [])
    offer(c, [(body([[1.0, 2.0]]), b"[1]"), (body([["x", 2.0]]), b"[2]")])
    written = sink.write(sink.drain(), "t")
    assert written.dropped == {"unreadable": 2} and written.rows == {"model_outputs": 2}
