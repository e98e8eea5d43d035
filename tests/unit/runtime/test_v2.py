"""Open Inference Protocol v2 tensors: JSON and binary requests -> rows, results -> responses."""

from __future__ import annotations

import json

import numpy as np
import orjson
import pytest

from modelfleet.runtime.loaders import BadInput
from modelfleet.runtime.v2 import request_rows, response


def _json(doc) -> bytes:
    """A V2 request as the gateway hands it on: a zero header length, then the JSON body."""
    return (0).to_bytes(4, "big") + json.dumps(doc).encode()


def _binary(inputs: list[dict], *tensors: np.ndarray) -> bytes:
    """The binary tensor extension: the JSON header's length, the header, the raw tensor bytes."""
    header = json.dumps({"inputs": inputs}).encode()
    return len(header).to_bytes(4, "big") + header + b"".join(t.tobytes() for t in tensors)


def _input(data, shape, datatype="FP64", **extra) -> dict:
    return {"name": "x", "shape": shape, "datatype": datatype, "data": data, **extra}


def _rows(*inputs) -> list:
    rows, _ = request_rows(_json({"inputs": list(inputs)}))
    return rows


# -- decoding -------------------------------------------------------------------------------------

def test_a_json_matrix_becomes_rows_and_the_document_is_returned():
    doc = {"id": "r1", "inputs": [_input([1, 2, 3, 4, 5, 6], [2, 3])], "outputs": [{"name": "y"}]}
    rows, back = request_rows(_json(doc))
    assert rows == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    assert back == doc


@pytest.mark.parametrize("datatype, data, expected", [
    ("BOOL", [True, False], [[True], [False]]),
    ("INT8", [-128, 127], [[-128], [127]]),
    ("INT16", [-3, 3], [[-3], [3]]),
    ("INT32", [1, 2], [[1], [2]]),
    ("INT64", [2**40, -1], [[2**40], [-1]]),
    ("UINT8", [0, 255], [[0], [255]]),
    ("UINT16", [1, 2], [[1], [2]]),
    ("UINT32", [1, 2], [[1], [2]]),
    ("UINT64", [2**63, 0], [[2**63], [0]]),
    ("FP16", [0.5, 2.0], [[0.5], [2.0]]),
    ("FP32", [0.25, 1.5], [[0.25], [1.5]]),
    ("FP64", [0.1, 1e300], [[0.1], [1e300]]),
    ("BYTES", ["a", "b"], [["a"], ["b"]]),
])
def test_every_v2_datatype(datatype, data, expected):
    rows = _rows(_input(data, [2, 1], datatype))
    assert rows == expected
    assert all(type(v) is type(e) for row, erow in zip(rows, expected) for v, e in zip(row, erow))


def test_datatype_is_case_insensitive_and_defaults_to_fp64():
    assert _rows(_input([1, 2], [1, 2], "fp32")) == [[1.0, 2.0]]
    assert _rows({"name": "x", "shape": [1, 2], "data": [1, 2]}) == [[1.0, 2.0]]


@pytest.mark.parametrize("shape, data, expected", [
    ([3], [1, 2, 3], [[1.0], [2.0], [3.0]]),                          # one value per row
    ([1, 4], [[1, 2, 3, 4]], [[1.0, 2.0, 3.0, 4.0]]),                 # nested data, same shape
    ([2, 2, 2], list(range(8)), [[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]]),  # flattened per row
])
def test_shapes_are_read_as_batch_first(shape, data, expected):
    assert _rows(_input(data, shape)) == expected


def test_several_inputs_are_columns_side_by_side():
    rows = _rows(_input([1, 2], [2, 1], "INT64"), _input([10, 20, 30, 40], [2, 2], "INT64"))
    assert rows == [[1, 10, 20], [2, 30, 40]]


def test_binary_tensors_follow_the_json_header():
    a = np.array([[1.5, 2.5], [3.5, 4.5]], dtype=np.float64)
    b = np.array([7, 8], dtype=np.int32)
    inputs = [{"name": "a", "shape": [2, 2], "datatype": "FP64", "parameters": {"binary_data_size": a.nbytes}},
              {"name": "b", "shape": [2, 1], "datatype": "INT32", "parameters": {"binary_data_size": b.nbytes}}]
    rows, doc = request_rows(_binary(inputs, a, b))
    assert rows == [[1.5, 2.5, 7.0], [3.5, 4.5, 8.0]]
    assert doc == {"inputs": inputs}


def test_binary_and_json_inputs_mix():
    a = np.array([1, 2], dtype=np.float32)
    inputs = [{"name": "a", "shape": [2], "datatype": "FP32", "parameters": {"binary_data_size": a.nbytes}},
              _input([3, 4], [2])]
    rows, _ = request_rows(_binary(inputs, a))
    assert rows == [[1.0, 3.0], [2.0, 4.0]]


# -- malformed requests: BadInput with a message naming the problem --------------------------------

def _refused(payload: bytes, message: str) -> None:
    with pytest.raises(BadInput) as info:
        request_rows(payload)
    assert message in str(info.value), str(info.value)


@pytest.mark.parametrize("payload, message", [
    (b"", "Inference-Header-Content-Length is larger than the body"),
    ((100).to_bytes(4, "big") + b'{"inputs": []}', "Inference-Header-Content-Length is larger than the body"),
    (_json({"inputs": [1]})[:-3], "request body is not valid JSON"),
    ((0).to_bytes(4, "big") + b"\xff\xfe", "request body is not valid JSON"),
])
def test_a_body_that_is_not_a_v2_document(payload, message):
    _refused(payload, message)


@pytest.mark.parametrize("doc", [[], {}, {"inputs": []}, {"inputs": "x"}, {"inputs": {"a": 1}}, {"outputs": []}])
def test_inputs_must_be_a_non_empty_list(doc):
    _refused(_json(doc), 'a V2 request needs a non-empty "inputs" list')


@pytest.mark.parametrize("tensor", [
    1,
    "x",
    {"name": "x", "datatype": "FP64", "data": [1]},                       # no shape
    {"name": "x", "shape": [], "datatype": "FP64", "data": 1},            # empty shape
    {"name": "x", "shape": 2, "datatype": "FP64", "data": [1, 2]},        # shape not a list
    {"name": "x", "shape": [1], "datatype": "FP64"},                      # no data, no binary size
])
def test_a_tensor_needs_shape_and_data(tensor):
    _refused(_json({"inputs": [tensor]}), "inputs[0] needs name, a non-empty shape, datatype and data")


def test_parameters_must_be_an_object():
    _refused(_json({"inputs": [_input([1], [1], parameters=[])]}), "inputs[0].parameters must be an object")


@pytest.mark.parametrize("datatype", ["FLOAT", "STRING", "BF16", None])
def test_unknown_datatypes_are_named(datatype):
    _refused(_json({"inputs": [_input([1], [1], datatype)]}), f"inputs[0].datatype {datatype!r} is not a V2 datatype")


@pytest.mark.parametrize("shape, data", [
    ([2, 2], [1, 2, 3]),          # too few values
    ([1, 2], [1, 2, 3]),          # too many
    (["a"], [1]),                 # a dimension that is not a number
    ([None], [1]),
    ([2, 2], [[1], [2, 3]]),      # ragged
    ([1], ["one"]),               # not a number for FP64
    ([1], {"a": 1}),
])
def test_data_that_does_not_fit_its_shape(shape, data):
    _refused(_json({"inputs": [_input(data, shape)]}), "inputs[0]: data does not fit shape")


@pytest.mark.parametrize("size", [-1, 9, "8", 1.5, 7])
def test_binary_sizes_that_do_not_fit_the_request(size):
    a = np.array([1.0], dtype=np.float64)   # 8 bytes follow the header
    inputs = [{"name": "a", "shape": [1], "datatype": "FP64", "parameters": {"binary_data_size": size}}]
    _refused(_binary(inputs, a), "inputs[0]")
    if size != 7:   # 7 bytes are there but are not a whole FP64
        _refused(_binary(inputs, a), f"binary_data_size {size!r} does not fit the request")


def test_bytes_cannot_be_binary():
    inputs = [{"name": "a", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 1}}]
    _refused(_binary(inputs, np.array([1], dtype=np.uint8)), "binary_data_size 1 does not fit the request")


def test_binary_tensors_cannot_read_past_the_body():
    a = np.array([1.0, 2.0], dtype=np.float64)
    inputs = [{"name": "a", "shape": [2], "datatype": "FP64", "parameters": {"binary_data_size": 16}},
              {"name": "b", "shape": [2], "datatype": "FP64", "parameters": {"binary_data_size": 16}}]
    _refused(_binary(inputs, a), "inputs[1]: binary_data_size 16 does not fit the request")


def test_inputs_must_agree_on_the_batch_size():
    _refused(_json({"inputs": [_input([1, 2, 3, 4], [1, 4]), _input([1, 2], [2, 1])]}),
             "inputs disagree on the batch size")


@pytest.mark.xfail(strict=True, raises=OverflowError,
                   reason="v2.request_rows lets numpy's OverflowError out: the replica answers 424, not 400")
@pytest.mark.parametrize("datatype, value", [("INT8", 300), ("UINT8", -1), ("INT64", 2**70)])
def test_values_out_of_the_datatypes_range(datatype, value):
    _refused(_json({"inputs": [_input([value], [1], datatype)]}), "inputs[0]")


# -- encoding ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("result, datatype, shape, data", [
    ([0, 2], "INT64", [2], [0, 2]),
    (np.array([1, 2], dtype=np.uint8), "UINT64", [2], [1, 2]),
    ([[0.5, 0.5], [0.1, 0.9]], "FP64", [2, 2], [0.5, 0.5, 0.1, 0.9]),
    (np.array([True, False]), "BOOL", [2], [True, False]),
    (["setosa", "virginica"], "BYTES", [2], ["setosa", "virginica"]),
    (np.array([[1, "a"]], dtype=object), "BYTES", [1, 2], ["1", "a"]),
])
def test_results_become_one_output_tensor(result, datatype, shape, data):
    out = orjson.loads(response(result, {}, "iris-ep", "blue"))
    assert out == {"model_name": "iris-ep", "model_version": "blue",
                   "outputs": [{"name": "predict", "datatype": datatype, "shape": shape, "data": data}]}


def test_the_response_echoes_the_request_id_and_the_requested_output_name():
    out = orjson.loads(response([1], {"id": "req-7", "outputs": [{"name": "label"}]}, "m", "1"))
    assert out["id"] == "req-7" and out["outputs"][0]["name"] == "label"


@pytest.mark.parametrize("outputs", [None, [], ["label"], [{"parameters": {}}], {"name": "label"}])
def test_odd_requested_outputs_fall_back_to_predict(outputs):
    out = orjson.loads(response([1], {"outputs": outputs}, "m", "1"))
    assert out["outputs"][0]["name"] == "predict" and "id" not in out
