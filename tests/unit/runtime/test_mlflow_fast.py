"""The fast path for MLflow models of the sklearn flavour: rows of numbers take it and answer as
the pyfunc does; anything MLflow's signature checks would look at still goes through the pyfunc."""

from __future__ import annotations

import numpy as np
import orjson
import pandas as pd
import pytest
from sklearn import datasets
from sklearn.ensemble import RandomForestClassifier

from modelfleet.runtime import fast_path
from modelfleet.runtime.loaders import load_mlflow


@pytest.fixture(scope="module")
def iris():
    X, y = datasets.load_iris(return_X_y=True, as_frame=True)
    return X, y, RandomForestClassifier(n_estimators=20, random_state=0).fit(X.to_numpy(), y)


def _saved(tmp_path, model, example):
    import mlflow.sklearn
    from mlflow.models import infer_signature
    model_dir = tmp_path / "models" / ("b" * 64)
    model_dir.mkdir(parents=True)
    mlflow.sklearn.save_model(model, str(model_dir / "m"), serialization_format="cloudpickle", signature=infer_signature(example, model.predict(
        example.to_numpy())), input_example=example.head(3))
    return model_dir


def test_an_mlflow_sklearn_model_answers_as_its_pyfunc_on_the_fast_path(tmp_path, iris):
    import mlflow.pyfunc
    X, _, model = iris
    model_dir = _saved(tmp_path, model, X)
    scorer = load_mlflow(model_dir)
    assert scorer.fast_path["path"] == "onnx", scorer.fast_path["reason"]
    assert "and 3 request samples" in scorer.fast_path["reason"]   # its input example probes it too
    pyfunc = mlflow.pyfunc.load_model(str(model_dir / "m"))
    rng = np.random.default_rng(3)
    rows = np.round(X.to_numpy()[rng.integers(0, len(X), 2000)] + rng.normal(0, 0.2, (2000, 4)), 3)
    want = pyfunc.predict(pd.DataFrame(rows, columns=X.columns)).tolist()
    body = {"dataframe_split": {"columns": list(X.columns), "data": rows.tolist()}}
    assert orjson.loads(scorer.score([orjson.dumps(body)])[0]) == want
    for row, label in list(zip(rows.tolist(), want))[:30]:
        assert orjson.loads(scorer.score([orjson.dumps({"input_data": [row]})])[0]) == [label]
    # a string where the signature says double: MLflow's own refusal, as before
    with pytest.raises(Exception, match="(?i)incompatible input types|could not convert|Failed to enforce"):
        scorer.score([orjson.dumps({"input_data": [["5.1", 3.5, 1.4, 0.2]]})])


def test_integer_columns_keep_mlflows_type_checks(tmp_path, iris):
    X, y, _ = iris
    Xi = (X * 10).round().astype("int64")
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(Xi.to_numpy(), y)
    scorer = load_mlflow(_saved(tmp_path, model, Xi))
    assert scorer.fast_path["path"] == "off" and "long columns" in scorer.fast_path["reason"]
    with pytest.raises(fast_path.Refused, match="fast_path: required"):
        load_mlflow(_saved(tmp_path / "again", model, Xi), "required")
    assert load_mlflow(_saved(tmp_path / "off", model, Xi), False).fast_path["path"] == "off"
