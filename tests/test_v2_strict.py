"""The Open Inference Protocol, strictly, on a real server: the model's tensors in metadata, outputs
selected by name with their real datatypes, binary tensors both ways (tritonclient), a KServe-style
client, 400 for values a datatype cannot hold, 405 with Allow, and every answer checked against the
protocol's published REST schema (tests/data/open_inference_protocol_rest.schema.json)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import httpx
import joblib
import jsonschema
import numpy as np
import pytest

from modelfleet import Fleet
from modelfleet.runtime import loaders

from .conftest import IRIS_ROWS, fleet_in
from .helpers import scoring_code

SCHEMA = json.loads((Path(__file__).parent / "data" / "open_inference_protocol_rest.schema.json").read_text())

TEXT_SCORE = '''
import json

v2_metadata = {
    "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1, 1]}],
    "outputs": [{"name": "length", "datatype": "INT64", "shape": [-1]},
                {"name": "upper", "datatype": "BYTES", "shape": [-1]}],
}

def init():
    pass

def run(raw):
    rows = json.loads(raw)["data"]
    return {"length": [len(r[0]) for r in rows], "upper": [r[0].upper() for r in rows]}
'''


def _onnx_iris(models_dir: Path, out: Path) -> Path:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression
    sk = joblib.load(models_dir / "iris" / "model.joblib")
    onx = convert_sklearn(sk, initial_types=[("float_input", FloatTensorType([None, 4]))],
                          options={LogisticRegression: {"zipmap": False}})
    out.mkdir(parents=True)
    (out / "model.onnx").write_bytes(onx.SerializeToString())
    return out


@dataclass
class Target:
    fleet: Fleet
    base: str
    host: str
    auth: dict      # the key of v2-iris
    keys: dict      # endpoint -> key


@pytest.fixture(scope="module")
def v2(tmp_path_factory, models_dir):
    """One server: iris (scikit-learn), iris as ONNX, and a score.py over strings that declares its tensors."""
    home = tmp_path_factory.mktemp("v2-home")
    work = tmp_path_factory.mktemp("v2-work")
    with fleet_in(home) as fleet:
        fleet.models.register("iris", models_dir / "iris", "1")
        fleet.models.register("iris-onnx", _onnx_iris(models_dir, work / "onnx"), "1")
        (work / "empty").mkdir()
        (work / "empty" / "README").write_text("no model files: the scoring script is the model")
        fleet.models.register("text", work / "empty", "1", type="custom")
        for ep, model, extra in (("v2-iris", "iris:1", {}), ("v2-onnx", "iris-onnx:1", {}),
                                 ("v2-text", "text:1", {"code_configuration": scoring_code(work / "code",
                                                                                          TEXT_SCORE)})):
            fleet.online_endpoints.create(ep)
            fleet.online_deployments.create("blue", ep, model, **extra)
        keys = {ep: fleet.online_endpoints.get_keys(ep)["primaryKey"] for ep in ("v2-iris", "v2-onnx", "v2-text")}
        base = fleet.online_endpoints.get("v2-iris")["scoring_uri"].split("/endpoints/")[0]
        yield Target(fleet, base, base.removeprefix("http://"), {"Authorization": f"Bearer {keys['v2-iris']}"}, keys)


def _auth(v2: Target, ep: str) -> dict:
    return {"Authorization": f"Bearer {v2.keys[ep]}"}


def _infer(v2: Target, ep: str, doc: dict, **kw) -> httpx.Response:
    return httpx.post(f"{v2.base}/v2/models/{ep}/infer", json=doc, headers=_auth(v2, ep), timeout=30, **kw)


def _iris_input(name: str = "input-0", datatype: str = "FP64") -> dict:
    return {"name": name, "shape": [2, 4], "datatype": datatype, "data": IRIS_ROWS}


def _valid(doc: dict, definition: str) -> None:
    jsonschema.validate(doc, {"$ref": f"#/$defs/{definition}", **SCHEMA})


# -- what a model takes and gives -------------------------------------------------------------

def test_replicas_find_the_tensors_of_their_model(models_dir, tmp_path):
    """The metadata a replica sends in its READY frame, computed from the model itself."""
    sk = loaders.load_sklearn(models_dir / "iris")
    assert sk.metadata == {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}],
                           "outputs": [{"name": "predict", "datatype": "INT64", "shape": [-1]},
                                       {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]}]}
    onnx = loaders.load_onnx(_onnx_iris(models_dir, tmp_path / "onnx"))
    assert onnx.metadata == {"inputs": [{"name": "float_input", "datatype": "FP32", "shape": [-1, 4]}],
                             "outputs": [{"name": "label", "datatype": "INT64", "shape": [-1]},
                                         {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}]}
    script = loaders.ScriptScorer(Path(scoring_code(tmp_path / "code", TEXT_SCORE)["code"]) / "score.py")
    assert [t["name"] for t in script.metadata["inputs"] + script.metadata["outputs"]] == ["text", "length", "upper"]
    bad = scoring_code(tmp_path / "bad", "v2_metadata = {'inputs': [{'name': 'x', 'datatype': 'FLOAT', 'shape': [1]}]}\n"
                                         "def run(raw):\n    return raw\n")
    with pytest.raises(ValueError, match=r"v2_metadata\['inputs'\]\[0\]"):
        loaders.ScriptScorer(Path(bad["code"]) / "score.py")


@pytest.mark.slow
def test_model_metadata_lists_the_real_tensors(v2):
    r = httpx.get(f"{v2.base}/v2/models/v2-onnx", headers=_auth(v2, "v2-onnx"))
    assert r.status_code == 200
    _valid(r.json(), "metadata_model_response")
    assert r.json()["inputs"] == [{"name": "float_input", "datatype": "FP32", "shape": [-1, 4]}]
    assert [o["name"] for o in r.json()["outputs"]] == ["label", "probabilities"]
    r = httpx.get(f"{v2.base}/v2/models/v2-text/versions/blue", headers=_auth(v2, "v2-text"))
    assert r.json()["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1, 1]}]
    r = httpx.get(f"{v2.base}/v2/models/v2-iris", headers=v2.auth)
    assert [(o["name"], o["datatype"]) for o in r.json()["outputs"]] == [("predict", "INT64"), ("predict_proba", "FP64")]


# -- outputs ------------------------------------------------------------------------------------

@pytest.mark.slow
def test_outputs_are_the_models_own_selected_by_name(v2):
    sk = joblib.load(Path(v2.fleet.models.verified_path(v2.fleet.models.get("iris", "1"))) / "iris" / "model.joblib")
    r = _infer(v2, "v2-iris", {"id": "q1", "inputs": [_iris_input()]})
    assert r.status_code == 200
    body = r.json()
    assert body["id"] == "q1" and body["model_version"] == "blue"
    assert [(o["name"], o["datatype"], o["shape"]) for o in body["outputs"]] == [
        ("predict", "INT64", [2]), ("predict_proba", "FP64", [2, 3])]
    assert np.allclose(np.reshape(body["outputs"][1]["data"], (2, 3)), sk.predict_proba(np.asarray(IRIS_ROWS)))
    only = _infer(v2, "v2-iris", {"inputs": [_iris_input()], "outputs": [{"name": "predict_proba"}]}).json()
    assert [o["name"] for o in only["outputs"]] == ["predict_proba"]
    r = _infer(v2, "v2-iris", {"inputs": [_iris_input()], "outputs": [{"name": "label"}]})
    assert r.status_code == 400 and "unknown output 'label'" in r.json()["error"]
    assert "predict, predict_proba" in r.json()["error"]
    twice = {"inputs": [_iris_input()], "outputs": [{"name": "predict"}, {"name": "predict"}]}
    r = _infer(v2, "v2-iris", twice)   # as Triton: an output is asked for once
    assert r.status_code == 400 and "output 'predict' is requested more than once" in r.json()["error"]
    onnx = _infer(v2, "v2-onnx", {"inputs": [_iris_input("float_input", "FP32")]}).json()
    assert [(o["name"], o["datatype"]) for o in onnx["outputs"]] == [("label", "INT64"),
                                                                    ("probabilities", "FP32")]
    assert onnx["outputs"][0]["data"] == [0, 2]


@pytest.mark.slow
def test_tritonclient_with_binary_inputs_and_outputs(v2):
    import tritonclient.http as tc
    client = tc.InferenceServerClient(url=v2.host)
    try:
        x = np.asarray(IRIS_ROWS, dtype=np.float32)
        inp = tc.InferInput("input-0", list(x.shape), "FP32")
        inp.set_data_from_numpy(x, binary_data=True)
        res = client.infer("v2-iris", [inp], headers=_auth(v2, "v2-iris"), outputs=[
            tc.InferRequestedOutput("predict", binary_data=True),
            tc.InferRequestedOutput("predict_proba", binary_data=True)])
        assert res.as_numpy("predict").dtype == np.int64 and res.as_numpy("predict").tolist() == [0, 2]
        assert res.as_numpy("predict_proba").shape == (2, 3)
        assert res.get_output("predict")["parameters"] == {"binary_data_size": 16}
        # BYTES both ways: binary strings in, binary strings and lengths out
        words = np.array([[b"ab"], [b"c\x00de"]], dtype=np.object_)
        inp = tc.InferInput("text", [2, 1], "BYTES")
        inp.set_data_from_numpy(words, binary_data=True)
        res = client.infer("v2-text", [inp], headers=_auth(v2, "v2-text"), outputs=[
            tc.InferRequestedOutput("length", binary_data=True), tc.InferRequestedOutput("upper", binary_data=True)])
        assert res.as_numpy("length").tolist() == [2, 4]
        assert res.as_numpy("upper").tolist() == [b"AB", b"C\x00DE"]
        # JSON strings in, one output as JSON
        inp = tc.InferInput("text", [1, 1], "BYTES")
        inp.set_data_from_numpy(np.array([["xyz"]], dtype=np.object_), binary_data=False)
        res = client.infer("v2-text", [inp], headers=_auth(v2, "v2-text"),
                           outputs=[tc.InferRequestedOutput("upper", binary_data=False)])
        assert res.get_response()["outputs"] == [{"name": "upper", "datatype": "BYTES", "shape": [1], "data": ["XYZ"]}]
        meta = client.get_server_metadata()
        assert "binary_tensor_data" in meta["extensions"]
    finally:
        client.close()


@pytest.mark.slow
def test_binary_data_output_for_every_output(v2):
    r = _infer(v2, "v2-iris", {"inputs": [_iris_input()], "parameters": {"binary_data_output": True}})
    hlen = int(r.headers["inference-header-content-length"])
    header = json.loads(r.content[:hlen])
    _valid(header, "binary_inference_response")
    sizes = [o["parameters"]["binary_data_size"] for o in header["outputs"]]
    assert sizes == [2 * 8, 2 * 3 * 8] and len(r.content) == hlen + sum(sizes)
    assert np.frombuffer(r.content[hlen:hlen + 16], dtype="<i8").tolist() == [0, 2]


# -- what a request may hold ---------------------------------------------------------------------

BAD_TENSORS = {
    "uint8_300": ({"name": "x", "shape": [1, 4], "datatype": "UINT8", "data": [300, 1, 2, 3]}, "300 is out of range for UINT8"),
    "int8_minus_200": ({"name": "x", "shape": [1, 4], "datatype": "INT8", "data": [-200, 1, 2, 3]},
                       "-200 is out of range for INT8"),
    "int32_fraction": ({"name": "x", "shape": [1, 4], "datatype": "INT32", "data": [1.5, 1, 2, 3]}, "fractions"),
    "uint64_too_big": ({"name": "x", "shape": [1, 4], "datatype": "UINT64", "data": [2 ** 70, 1, 2, 3]}, "out of range"),
    "fp16_overflow": ({"name": "x", "shape": [1, 4], "datatype": "FP16", "data": [1e6, 1, 2, 3]}, "out of range for FP16"),
    "bool_not_bool": ({"name": "x", "shape": [1, 4], "datatype": "BOOL", "data": [1, 0, 1, 0]}, "true or false"),
    "shape_minus_one": ({"name": "x", "shape": [-1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}, "cannot have -1"),
    "shape_fraction": ({"name": "x", "shape": [2.5, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}, "not a whole number"),
    "count_mismatch": ({"name": "x", "shape": [2, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}, "needs 8"),
    "ragged": ({"name": "x", "shape": [2, 2], "datatype": "FP64", "data": [[1, 2], [3]]}, "regular list"),
    "bytes_not_strings": ({"name": "x", "shape": [1], "datatype": "BYTES", "data": [1]}, "must be strings"),
    "unknown_datatype": ({"name": "x", "shape": [1], "datatype": "FLOAT", "data": [1]}, "not a V2 datatype"),
    "data_and_binary": ({"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4],
                         "parameters": {"binary_data_size": 0}}, "both data and binary_data_size"),
    "no_name": ({"shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}, "needs name"),
    "wrong_width": ({"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}, r"takes \[-1, 4\]"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(BAD_TENSORS))
def test_tensors_a_datatype_or_shape_cannot_hold_are_400(v2, case):
    tensor, reason = BAD_TENSORS[case]
    r = _infer(v2, "v2-iris", {"inputs": [tensor]})
    assert r.status_code == 400, (r.status_code, r.text)
    assert r.json()["code"] == "bad_request"
    import re
    assert re.search(reason, r.json()["error"]), r.json()["error"]
    _valid(r.json(), "inference_error_response")


@pytest.mark.slow
def test_binary_inputs_must_fit_their_shape(v2):
    x = np.asarray(IRIS_ROWS, dtype="<f8").tobytes()
    head = {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64", "parameters": {"binary_data_size": 64}}]}

    def post(header: dict, blob: bytes) -> httpx.Response:
        raw = json.dumps(header).encode()
        return httpx.post(f"{v2.base}/v2/models/v2-iris/infer", content=raw + blob,
                          headers={**v2.auth, "Inference-Header-Content-Length": str(len(raw))})
    assert post(head, x).json()["outputs"][0]["data"] == [0, 2]
    assert "does not fit" in post({"inputs": [{**head["inputs"][0], "shape": [1, 4]}]}, x).json()["error"]
    assert "after the last input" in post(head, x + b"\0\0").json()["error"]
    words = {"inputs": [{"name": "text", "shape": [2, 1], "datatype": "BYTES", "parameters": {"binary_data_size": 6}}]}
    raw = json.dumps(words).encode()
    r = httpx.post(f"{v2.base}/v2/models/v2-text/infer", content=raw + b"\x05\0\0\0ab",
                   headers={**_auth(v2, "v2-text"), "Inference-Header-Content-Length": str(len(raw))})
    assert r.status_code == 400 and "runs past its data" in r.json()["error"]


# -- routes ------------------------------------------------------------------------------------

ROUTES = [("/v2", "GET"), ("/v2/health/live", "GET"), ("/v2/health/ready", "GET"), ("/v2/models/v2-iris", "GET"),
          ("/v2/models/v2-iris/ready", "GET"), ("/v2/models/v2-iris/versions/blue", "GET"),
          ("/v2/models/v2-iris/versions/blue/ready", "GET"), ("/v2/models/v2-iris/infer", "POST"),
          ("/v2/models/v2-iris/versions/blue/infer", "POST"), ("/endpoints/v2-iris/score", "POST")]


@pytest.mark.slow
@pytest.mark.parametrize("path,allowed", ROUTES)
def test_every_route_refuses_other_methods_with_allow(v2, path, allowed):
    with httpx.Client(base_url=v2.base, headers=v2.auth) as c:
        for method in ("GET", "POST", "PUT", "DELETE", "PATCH"):
            if method == allowed:
                continue
            r = c.request(method, path, content=b"{}")
            assert r.status_code == 405, (method, path, r.status_code)
            assert r.headers["allow"] == allowed


# -- clients and the published schema -----------------------------------------------------------

@pytest.mark.slow
def test_kserve_v2_rest_client_flow(v2):
    """What KServe's InferenceRESTClient sends and reads (V2 REST shapes, plain httpx: the kserve
    package pins pandas<3 and brings Kubernetes and gRPC, so it is not installed here)."""
    with httpx.Client(base_url=v2.base, headers=v2.auth, timeout=30) as c:
        assert c.get("/v2/health/live").status_code == 200
        assert c.get("/v2/health/ready").json() == {"ready": True}
        assert c.get("/v2/models/v2-iris/ready").status_code == 200
        request = {"id": "kserve-1", "parameters": {"content_type": "np"},
                   "inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP32",
                               "data": np.asarray(IRIS_ROWS, dtype=np.float32).reshape(-1).tolist()}],
                   "outputs": [{"name": "predict"}]}
        _valid(request, "inference_request")
        r = c.post("/v2/models/v2-iris/infer", json=request)
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        body = r.json()
        assert body["id"] == "kserve-1" and body["model_name"] == "v2-iris"
        out = body["outputs"][0]
        assert (out["name"], out["datatype"], out["shape"], out["data"]) == ("predict", "INT64", [2], [0, 2])
        # KServe's binary form: the JSON header's length in inference-header-content-length
        header = json.dumps({**request, "inputs": [{**request["inputs"][0], "parameters": {"binary_data_size": 32}}]})
        header = header.replace(', "data": ' + json.dumps(request["inputs"][0]["data"]), "").encode()
        r = c.post("/v2/models/v2-iris/versions/blue/infer",
                   content=header + np.asarray(IRIS_ROWS, dtype="<f4").tobytes(),
                   headers={"inference-header-content-length": str(len(header))})
        assert r.status_code == 200 and r.json()["outputs"][0]["data"] == [0, 2]


@pytest.mark.slow
def test_answers_follow_the_published_rest_schema(v2):
    with httpx.Client(base_url=v2.base, headers=v2.auth, timeout=30) as c:
        _valid(c.get("/v2").json(), "metadata_server_response")
        _valid(c.get("/v2/models/v2-iris").json(), "metadata_model_response")
        _valid(c.get("/v2/models/v2-iris/versions/blue").json(), "metadata_model_response")
        _valid(c.get("/v2/models/nope").json(), "metadata_model_error_response")
        for doc in ({"inputs": [_iris_input()]}, {"id": "x", "inputs": [_iris_input()], "outputs": [{"name": "predict"}]}):
            _valid(c.post("/v2/models/v2-iris/infer", json=doc).json(), "inference_response")
        _valid(c.post("/v2/models/v2-iris/infer", json={"inputs": []}).json(), "inference_error_response")
    text = _infer(v2, "v2-text", {"inputs": [{"name": "text", "shape": [1, 1], "datatype": "BYTES", "data": ["a"]}]})
    _valid(text.json(), "inference_response")
