"""Open Inference Protocol v2 inside a replica: JSON and binary tensors in, named outputs out."""

from __future__ import annotations

import json
import re

import numpy as np
import orjson
import pytest

from modelfleet.runtime import protocol as p
from modelfleet.runtime.loaders import BadInput, VectorScorer
from modelfleet.runtime.v2 import handle, parse_request, response, wanted_outputs

ECHO = VectorScorer(lambda x: x)   # a model whose one output is its input matrix: shows the rows it got


def _json(doc) -> bytes:
    """A V2 request as the gateway hands it on: a zero header length, then the JSON body."""
    return (0).to_bytes(4, "big") + json.dumps(doc).encode()


def _binary(inputs: list[dict], *tensors: np.ndarray, raw: bytes = b"") -> bytes:
    """The binary tensor extension: the JSON header's length, the header, the raw tensor bytes."""
    header = json.dumps({"inputs": inputs}).encode()
    return len(header).to_bytes(4, "big") + header + b"".join(t.tobytes() for t in tensors) + raw


def _input(data, shape, datatype="FP64", **extra) -> dict:
    return {"name": "x", "shape": shape, "datatype": datatype, "data": data, **extra}


def _answer(payload: bytes, scorer=ECHO) -> dict:
    kind, out = handle(scorer, payload, "m", "1")
    assert kind == p.OK, out
    hlen = int.from_bytes(out[:4], "big")
    return orjson.loads(out[4:4 + hlen] if hlen else out[4:])


def _rows(*inputs) -> list:
    out = _answer(_json({"inputs": list(inputs)}))["outputs"][0]
    return np.reshape(np.asarray(out["data"], dtype=object), out["shape"]).tolist()


# -- decoding -------------------------------------------------------------------------------------

def test_a_json_matrix_becomes_rows_and_the_document_is_returned():
    doc = {"id": "r1", "inputs": [_input([1, 2, 3, 4, 5, 6], [2, 3])], "outputs": [{"name": "predict"}]}
    back, tensors = parse_request(_json(doc))
    assert back == doc and [(n, a.tolist()) for n, a in tensors] == [("x", [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])]
    assert _rows(_input([1, 2, 3, 4, 5, 6], [2, 3])) == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]


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
def test_every_v2_datatype_and_its_answer_datatype(datatype, data, expected):
    out = _answer(_json({"inputs": [_input(data, [2, 1], datatype)]}))["outputs"][0]
    assert out["datatype"] == datatype  # the echo answers in the datatype it was given
    rows = np.reshape(np.asarray(out["data"], dtype=object), out["shape"]).tolist()
    assert rows == expected
    assert all(type(v) is type(e) for row, erow in zip(rows, expected) for v, e in zip(row, erow))


def test_datatype_names_ignore_case_and_are_required():
    assert _rows(_input([1, 2], [1, 2], "fp32")) == [[1.0, 2.0]]
    with pytest.raises(BadInput, match="is not a V2 datatype"):
        parse_request(_json({"inputs": [{"name": "x", "shape": [1, 2], "data": [1, 2]}]}))


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
    doc, tensors = parse_request(_binary(inputs, a, b))
    assert doc == {"inputs": inputs}
    assert [t.dtype.name for _, t in tensors] == ["float64", "int32"]
    out = _answer(_binary(inputs, a, b))["outputs"][0]
    assert np.reshape(out["data"], out["shape"]).tolist() == [[1.5, 2.5, 7.0], [3.5, 4.5, 8.0]]


def test_binary_and_json_inputs_mix():
    a = np.array([1, 2], dtype=np.float32)
    inputs = [{"name": "a", "shape": [2], "datatype": "FP32", "parameters": {"binary_data_size": a.nbytes}},
              _input([3, 4], [2])]
    out = _answer(_binary(inputs, a))["outputs"][0]
    assert np.reshape(out["data"], out["shape"]).tolist() == [[1.0, 3.0], [2.0, 4.0]]


def test_bytes_in_binary_are_length_prefixed():
    raw = b"\x02\0\0\0ab\x00\0\0\0\x03\0\0\0c\0d"
    inputs = [{"name": "s", "shape": [3], "datatype": "BYTES", "parameters": {"binary_data_size": len(raw)}}]
    _, tensors = parse_request(_binary(inputs, raw=raw))
    assert tensors[0][1].tolist() == [b"ab", b"", b"c\0d"]


# -- malformed requests: BadInput with a message naming the problem --------------------------------

def _refused(payload: bytes, message: str) -> None:
    with pytest.raises(BadInput) as info:
        parse_request(payload)
    assert message in str(info.value), str(info.value)
    kind, out = handle(ECHO, payload, "m", "1")  # a replica answers it as a bad request, not a model error
    assert kind == p.BAD_REQUEST and message in orjson.loads(out)["error"]["message"]


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


@pytest.mark.parametrize("tensor, message", [
    (1, "inputs[0] needs name, shape, datatype and data"),
    ("x", "inputs[0] needs name, shape, datatype and data"),
    ({"shape": [1], "datatype": "FP64", "data": [1]}, "inputs[0] needs name"),
    ({"name": "x", "datatype": "FP64", "data": [1]}, "inputs[0].shape must be a non-empty list"),
    ({"name": "x", "shape": [], "datatype": "FP64", "data": 1}, "inputs[0].shape must be a non-empty list"),
    ({"name": "x", "shape": 2, "datatype": "FP64", "data": [1, 2]}, "inputs[0].shape must be a non-empty list"),
    ({"name": "x", "shape": [1], "datatype": "FP64"}, "inputs[0] needs data"),
])
def test_a_tensor_needs_name_shape_and_data(tensor, message):
    _refused(_json({"inputs": [tensor]}), message)


def test_parameters_must_be_objects():
    _refused(_json({"inputs": [_input([1], [1], parameters=[])]}), "inputs[0].parameters must be an object")
    _refused(_json({"inputs": [_input([1], [1])], "parameters": 3}), "parameters must be an object")


@pytest.mark.parametrize("datatype", ["FLOAT", "STRING", "BF16", None])
def test_unknown_datatypes_are_named(datatype):
    _refused(_json({"inputs": [_input([1], [1], datatype)]}), f"inputs[0].datatype {datatype!r} is not a V2 datatype")


@pytest.mark.parametrize("shape, data, message", [
    ([2, 2], [1, 2, 3], "data has 3 values; its shape needs 4"),
    ([1, 2], [1, 2, 3], "data has 3 values; its shape needs 2"),
    (["a"], [1], "'a' is not a whole number"),
    ([None], [1], "None is not a whole number"),
    ([2.5, 4], [1], "2.5 is not a whole number"),
    ([True], [1], "True is not a whole number"),
    ([-1, 4], [1, 2, 3, 4], "cannot have -1"),
    ([2, 2], [[1], [2, 3]], "is not a regular list"),
    ([1], ["one"], "FP64 data must be numbers"),
    ([1], {"a": 1}, "inputs[0].data must be a list"),
    ([1], 1.5, "inputs[0].data must be a list"),
])
def test_data_that_does_not_fit_its_shape(shape, data, message):
    _refused(_json({"inputs": [_input(data, shape)]}), message)


@pytest.mark.parametrize("size, message", [
    (-1, "binary_data_size -1 does not fit the request"), (9, "binary_data_size 9 does not fit the request"),
    ("8", "binary_data_size '8' does not fit the request"), (1.5, "binary_data_size 1.5 does not fit the request"),
    (7, "binary_data_size 7 does not fit shape and datatype"),
])
def test_binary_sizes_that_do_not_fit_the_request(size, message):
    a = np.array([1.0], dtype=np.float64)   # 8 bytes follow the header
    inputs = [{"name": "a", "shape": [1], "datatype": "FP64", "parameters": {"binary_data_size": size}}]
    _refused(_binary(inputs, a), message)


@pytest.mark.parametrize("raw, message", [
    (b"\x01\0", "ends inside an element's length"), (b"\x05\0\0\0ab", "runs past its data"),
    (b"\x01\0\0\0a\x01\0\0\0b", "holds 2 BYTES elements; its shape needs 1"),
])
def test_binary_bytes_that_do_not_fit(raw, message):
    inputs = [{"name": "s", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": len(raw)}}]
    _refused(_binary(inputs, raw=raw), message)


def test_binary_tensors_cannot_read_past_the_body_nor_leave_bytes_over():
    a = np.array([1.0, 2.0], dtype=np.float64)
    inputs = [{"name": "a", "shape": [2], "datatype": "FP64", "parameters": {"binary_data_size": 16}},
              {"name": "b", "shape": [2], "datatype": "FP64", "parameters": {"binary_data_size": 16}}]
    _refused(_binary(inputs, a), "inputs[1]: binary_data_size 16 does not fit the request")
    _refused(_binary(inputs[:1], a, a), "16 bytes of binary data after the last input")
    both = [{**inputs[0], "data": [1, 2]}]
    _refused(_binary(both, a), "has both data and binary_data_size")


def test_inputs_must_agree_on_the_batch_size():
    kind, out = handle(ECHO, _json({"inputs": [_input([1, 2, 3, 4], [1, 4]), _input([1, 2], [2, 1])]}), "m", "1")
    assert kind == p.BAD_REQUEST and "inputs disagree on the batch size" in orjson.loads(out)["error"]["message"]


@pytest.mark.parametrize("datatype, value, message", [
    ("INT8", 300, "300 is out of range for INT8"), ("INT8", -200, "-200 is out of range for INT8"),
    ("UINT8", -1, "-1 is out of range for UINT8"), ("UINT8", 300, "300 is out of range for UINT8"),
    ("INT64", 2**70, "out of range for INT64"), ("UINT64", 2**64, "out of range for UINT64"),
    ("INT32", 1.5, "INT32 data cannot hold fractions"), ("FP16", 1e6, "out of range for FP16"),
    ("BOOL", 1, "BOOL data must be true or false"), ("BYTES", 1, "BYTES data must be strings"),
])
def test_values_out_of_the_datatypes_range(datatype, value, message):
    _refused(_json({"inputs": [_input([value], [1], datatype)]}), message)


# -- outputs ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("result, datatype, shape, data", [
    ([0, 2], "INT64", [2], [0, 2]),
    (np.array([1, 2], dtype=np.uint8), "UINT8", [2], [1, 2]),
    (np.array([0.5], dtype=np.float32), "FP32", [1], [0.5]),
    ([[0.5, 0.5], [0.1, 0.9]], "FP64", [2, 2], [0.5, 0.5, 0.1, 0.9]),
    (np.array([True, False]), "BOOL", [2], [True, False]),
    (["setosa", "virginica"], "BYTES", [2], ["setosa", "virginica"]),
    (np.array([[1, "a"]], dtype=object), "BYTES", [1, 2], ["1", "a"]),
])
def test_results_keep_their_real_datatype(result, datatype, shape, data):
    out = response([("predict", result)], {}, {}, "iris-ep", "blue")
    assert out[:4] == b"\0\0\0\0"   # all JSON
    assert orjson.loads(out[4:]) == {"model_name": "iris-ep", "model_version": "blue",
                                     "outputs": [{"name": "predict", "datatype": datatype, "shape": shape,
                                                  "data": data}]}


def test_binary_outputs_follow_their_json_header():
    out = response([("label", np.array([1, 2])), ("word", np.array(["ab", "c"], dtype=object))],
                   {"label": True, "word": True}, {"id": "q"}, "m", "1")
    hlen = int.from_bytes(out[:4], "big")
    header = orjson.loads(out[4:4 + hlen])
    assert header["id"] == "q"
    assert [o["parameters"]["binary_data_size"] for o in header["outputs"]] == [16, 4 + 2 + 4 + 1]
    blob = out[4 + hlen:]
    assert np.frombuffer(blob[:16], dtype="<i8").tolist() == [1, 2] and blob[16:] == b"\x02\0\0\0ab\x01\0\0\0c"


def test_outputs_are_chosen_by_name():
    available = ["predict", "predict_proba"]
    assert wanted_outputs({}, available) == [("predict", False), ("predict_proba", False)]
    assert wanted_outputs({"outputs": []}, available) == [("predict", False), ("predict_proba", False)]
    assert wanted_outputs({"parameters": {"binary_data_output": True}, "outputs": [
        {"name": "predict_proba"}, {"name": "predict", "parameters": {"binary_data": False}}]}, available) == [
        ("predict_proba", True), ("predict", False)]
    for outputs, message in ((["label"], "outputs[0] needs a name"), ([{"parameters": {}}], "outputs[0] needs a name"),
                             ({"name": "label"}, "outputs must be a list"),
                             ([{"name": "label"}], "unknown output 'label': the model's outputs are predict, "
                                                   "predict_proba")):
        with pytest.raises(BadInput, match=re.escape(message)):
            wanted_outputs({"outputs": outputs}, available)


def test_a_request_for_an_unknown_output_is_a_bad_request():
    kind, out = handle(ECHO, _json({"inputs": [_input([1], [1])], "outputs": [{"name": "label"}]}), "m", "1")
    assert kind == p.BAD_REQUEST and "unknown output 'label'" in orjson.loads(out)["error"]["message"]


def test_a_model_error_names_its_type_and_message():
    def broken(x):
        raise ArithmeticError("no")
    kind, out = handle(VectorScorer(broken), _json({"inputs": [_input([1], [1])]}), "m", "1")
    assert kind == p.MODEL_ERROR and orjson.loads(out)["error"] == {"code": "model_error",
                                                                    "message": "ArithmeticError: no"}
