"""No-code model types served for real: ONNX (onnxruntime) and MLflow pyfunc, next to sklearn."""

from __future__ import annotations

import joblib
import numpy as np
import pytest

from .conftest import IRIS_ROWS

pytestmark = pytest.mark.slow  # every test here starts a server and replicas


@pytest.fixture(scope="module")
def iris_xy():
    from sklearn.datasets import load_iris
    return load_iris(return_X_y=True)


def test_onnx_model(fleet, tmp_path, iris_xy, models_dir):
    import skl2onnx
    from skl2onnx.common.data_types import FloatTensorType
    X, _ = iris_xy
    sk = joblib.load(models_dir / "iris" / "model.joblib")
    onx = skl2onnx.convert_sklearn(sk, initial_types=[("input", FloatTensorType([None, 4]))])
    (tmp_path / "onnx").mkdir()
    (tmp_path / "onnx" / "model.onnx").write_bytes(onx.SerializeToString())
    m = fleet.models.register("iris-onnx", tmp_path / "onnx")
    assert m.type == "onnx"
    fleet.online_endpoints.create("onnx-ep")
    fleet.online_deployments.create("blue", "onnx-ep", "iris-onnx:1", batching={"max_batch_size": 8})
    rows = X[::15].tolist()
    assert fleet.online_endpoints.invoke("onnx-ep", {"data": rows}) == sk.predict(np.asarray(rows)).tolist()


def test_mlflow_pyfunc_model(fleet, tmp_path, iris_xy):
    import mlflow.sklearn as mlflow_sklearn
    from sklearn.tree import DecisionTreeClassifier
    X, y = iris_xy
    sk = DecisionTreeClassifier(random_state=0).fit(X, y)
    mlflow_sklearn.save_model(sk, tmp_path / "mlflow-model", serialization_format="cloudpickle")
    m = fleet.models.register("iris-mlflow", tmp_path / "mlflow-model")
    assert m.type == "mlflow"
    fleet.online_endpoints.create("mlflow-ep")
    fleet.online_deployments.create("blue", "mlflow-ep", "iris-mlflow:1")
    assert fleet.online_endpoints.invoke("mlflow-ep", {"input_data": {"columns": [0, 1, 2, 3], "data": IRIS_ROWS}}) \
        == sk.predict(np.asarray(IRIS_ROWS)).tolist()
    assert fleet.online_endpoints.invoke("mlflow-ep", {"inputs": IRIS_ROWS}) == [0, 2]
