"""Azure's curated environments and inference images, and the scoring helpers they carry.

Every entry of the catalog (curated.py) is built here, for real, with uv; deployments name a
curated environment as Azure's examples do (`azureml://registries/azureml/environments/...`)
and an inference image alone (`mcr.microsoft.com/azureml/...`), with a score.py using
inference_schema's decorators and `@rawhttp` / `AMLResponse` unchanged.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from modelfleet.domain import curated

pytestmark = pytest.mark.slow  # builds environments, starts a server and replicas

IMPORTS = {"sklearn-1.5": "sklearn", "sklearn-1.0": "sklearn", "lightgbm-3.3": "lightgbm",
           "minimal-py312-inference": "flask"}


def fleet(env: dict, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["fleet", *args], env=env, capture_output=True, text=True, cwd=cwd, timeout=900)


@pytest.fixture
def az_env(fleet_home):
    return {**os.environ, "FLEET_HOME": str(fleet_home),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def test_every_catalog_entry_builds_and_imports(fleet):
    assert {c.name for c in curated.CATALOG} == set(IMPORTS)
    for entry in curated.CATALOG:
        built = fleet.environments.build(f"azureml://registries/azureml/environments/{entry.name}/labels/latest",
                                         progress=lambda _line: None)
        assert built["environment"] == entry.ref
        probe = subprocess.run([built["python"], "-c", "import sys, inference_schema, azureml_inference_server_http, "
                                f"{IMPORTS[entry.name]}; print(sys.version.split()[0])"],
                               capture_output=True, text=True, timeout=120)
        assert probe.returncode == 0, (entry.name, probe.stderr[-2000:])
        if entry.python:
            assert probe.stdout.startswith(entry.python.removeprefix("==").removesuffix("*"))
        shown = fleet.environments.get(entry.registered_name, entry.version)
        assert shown.source["mapped_to"] == entry.mapped_to() and shown.to_dict()["built"] is True


SCHEMA_SCORE = '''import logging
import os

import numpy as np
import pandas as pd
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.parameter_types.pandas_parameter_type import PandasParameterType
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema, output_schema


def init():
    global weights
    weights = np.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model", "weights.npy"))


@input_schema("data", NumpyParameterType(np.array([[5.1, 3.5, 1.4, 0.2]])))
@input_schema("frame", PandasParameterType(pd.DataFrame({"sepal_length": [5.1], "petal_length": [1.4]})))
@input_schema("GlobalParameters", StandardPythonParameterType({"scale": 1.0}))
@output_schema(StandardPythonParameterType({"predictions": [0.5], "frame_rows": 1}))
def run(data, frame, GlobalParameters):
    logging.info("scoring %s rows", len(data))
    assert isinstance(data, np.ndarray) and isinstance(frame, pd.DataFrame), (type(data), type(frame))
    return {"predictions": (data @ weights * GlobalParameters["scale"]).tolist(), "frame_rows": len(frame),
            "frame_columns": list(frame.columns)}
'''

RAW_SCORE = '''import json

from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse


def init():
    pass


@rawhttp
def run(request):
    body = request.get_json()
    if "rows" not in body:
        return AMLResponse("rows missing", 400)
    return AMLResponse(json.dumps({"rows": len(body["rows"]), "method": request.method}), 200)
'''


def _deployment(work: Path, name: str, score: str, environment: str) -> Path:
    (work / name).mkdir()
    (work / name / "score.py").write_text(score)
    (work / f"{name}.yml").write_text(f"""name: {name}
model:
  path: model
code_configuration:
  code: {name}
  scoring_script: score.py
environment: {environment}
instance_count: 1
""")
    return work / f"{name}.yml"


def test_curated_and_image_environments_serve_azure_scoring_helpers(tmp_path, az_env):
    weights = np.array([0.5, -0.25, 1.0, 2.0])
    (tmp_path / "model").mkdir()
    np.save(tmp_path / "model" / "weights.npy", weights)
    schema_yml = _deployment(tmp_path, "schema", SCHEMA_SCORE,
                             "azureml://registries/azureml/environments/sklearn-1.5/labels/latest")
    raw_yml = _deployment(tmp_path, "raw", RAW_SCORE,
                          "\n  image: mcr.microsoft.com/azureml/minimal-py312-inference:latest")
    assert fleet(az_env, "online-endpoint", "create", "-n", "helpers", "-o", "none").returncode == 0
    for yml in (schema_yml, raw_yml):
        r = fleet(az_env, "online-deployment", "create", "-e", "helpers", "-f", str(yml), "-o", "none")
        assert r.returncode == 0, r.stderr[-3000:]
    key = json.loads(fleet(az_env, "online-endpoint", "get-credentials", "-n", "helpers").stdout)["primaryKey"]
    uri = fleet(az_env, "online-endpoint", "show", "-n", "helpers", "--query", "scoring_uri",
                "-o", "tsv").stdout.strip()
    base = uri.rsplit("/endpoints/", 1)[0]
    auth = {"authorization": f"Bearer {key}"}

    rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
    body = {"data": rows, "frame": [{"sepal_length": 5.1, "petal_length": 1.4}], "GlobalParameters": {"scale": 2.0}}
    r = httpx.post(uri, json=body, headers={**auth, "azureml-model-deployment": "schema"}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": pytest.approx((np.array(rows) @ weights * 2.0).tolist()), "frame_rows": 1,
                        "frame_columns": ["sepal_length", "petal_length"]}   # converted by the decorators
    r = httpx.post(uri, json={"data": rows}, headers={**auth, "azureml-model-deployment": "schema"}, timeout=60)
    assert r.status_code == 400 and "'frame'" in r.json()["error"]["message"]

    meta = httpx.get(f"{base}/v2/models/helpers/versions/schema", headers=auth, timeout=30).json()
    assert {t["name"]: (t["datatype"], t["shape"]) for t in meta["inputs"]} == {
        "data": ("FP64", [-1, 4]), "frame": ("FP64", [-1, 2]), "GlobalParameters": ("BYTES", [1])}
    docs = httpx.get(f"{base}/openapi.json", timeout=30).json()
    request_schema = docs["paths"]["/endpoints/helpers/score"]["post"]["requestBody"]["content"][
        "application/json"]["schema"]
    assert set(request_schema["properties"]) == {"data", "frame", "GlobalParameters"}

    headers = {**auth, "azureml-model-deployment": "raw"}
    r = httpx.post(uri, json={"rows": rows}, headers=headers, timeout=60)
    assert r.status_code == 200 and r.json() == {"rows": 2, "method": "POST"}
    r = httpx.post(uri, json={"nothing": 1}, headers=headers, timeout=60)
    assert r.status_code == 400 and r.json()["error"]["message"] == "rows missing"

    logs = fleet(az_env, "online-deployment", "get-logs", "-n", "schema", "-e", "helpers").stdout
    assert "scoring 2 rows" in logs
    shown = json.loads(fleet(az_env, "online-deployment", "show", "-n", "schema", "-e", "helpers").stdout)
    assert shown["environment"] == "AzureML-sklearn-1.5:1"
