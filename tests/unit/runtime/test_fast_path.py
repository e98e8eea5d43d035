"""The fast path gives scikit-learn's answers: every supported model family, thousands of rows,
the fast path (ONNX where it verifies, else scikit-learn unchecked) against the model itself."""

from __future__ import annotations

import warnings

import joblib
import numpy as np
import orjson
import pytest
from sklearn import datasets
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (GradientBoostingClassifier, GradientBoostingRegressor, HistGradientBoostingClassifier,
                              RandomForestClassifier, RandomForestRegressor)
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from modelfleet.runtime import fast_path, loaders, onnx_convert
from modelfleet.runtime.loaders import load_sklearn, to_json

ROWS = 4000


def _iris():
    return datasets.load_iris(return_X_y=True)


def _diabetes():
    return datasets.load_diabetes(return_X_y=True)


def _with_category(X):
    return np.c_[X, np.arange(len(X)) % 3]


def _onehot_pipeline():
    columns = ColumnTransformer([("num", StandardScaler(), [0, 1, 2, 3]),
                                 ("cat", OneHotEncoder(handle_unknown="ignore"), [4])])
    return make_pipeline(columns, LogisticRegression(max_iter=1000))


# (name, model, data, the path it must take)
FAMILIES = [
    ("logistic pipeline", lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)), _iris, "onnx"),
    ("decision tree classifier", lambda: DecisionTreeClassifier(random_state=0), _iris, "onnx"),
    ("random forest classifier", lambda: RandomForestClassifier(n_estimators=30, random_state=0), _iris, "onnx"),
    ("gradient boosting classifier", lambda: GradientBoostingClassifier(n_estimators=20, random_state=0), _iris,
     "onnx"),
    ("one-hot pipeline", _onehot_pipeline, lambda: (_with_category(_iris()[0]), _iris()[1]), "onnx"),
    ("linear regression", LinearRegression, _diabetes, "onnx"),
    ("ridge pipeline", lambda: make_pipeline(MinMaxScaler(), Ridge()), _diabetes, "onnx"),
    ("decision tree regressor", lambda: DecisionTreeRegressor(random_state=0), _diabetes, "onnx"),
    ("random forest regressor", lambda: RandomForestRegressor(n_estimators=20, random_state=0), _diabetes, "onnx"),
    ("gradient boosting regressor", lambda: GradientBoostingRegressor(n_estimators=20, random_state=0), _diabetes,
     "onnx"),
    ("hist gradient boosting (no converter)", lambda: HistGradientBoostingClassifier(max_iter=10), _iris,
     "sklearn-unchecked"),
]


def _rows(X, n: int, seed: int = 1):
    """`n` rows: the training rows, then jittered copies of them (values it has not seen)."""
    rng = np.random.default_rng(seed)
    picked = X[rng.integers(0, len(X), n)].astype(float)
    jitter = rng.normal(0, 0.05, picked.shape) * (X.std(axis=0) + 1e-9)
    picked[len(X):] += jitter[len(X):]
    if X.shape[1] == 5:   # the one-hot column stays a known category
        picked[:, 4] = np.round(picked[:, 4]).clip(0, 2)
    return np.vstack([X.astype(float), picked])[:n]


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """Each family fitted and stored as a model version is: <store>/models/<sha256>/<folder>."""
    root = tmp_path_factory.mktemp("store")
    out = {}
    for i, (name, make, data, path) in enumerate(FAMILIES):
        X, y = data()
        model = make().fit(X, y)
        model_dir = root / "models" / f"{i:064x}"
        (model_dir / "m").mkdir(parents=True)
        joblib.dump(model, model_dir / "m" / "model.joblib")
        out[name] = (model, model_dir, X, path)
    return out


@pytest.mark.parametrize("name", [f[0] for f in FAMILIES])
def test_fast_path_answers_as_scikit_learn(stored, name):
    model, model_dir, X, path = stored[name]
    scorer = load_sklearn(model_dir)
    assert scorer.fast_path["path"] == path, scorer.fast_path["reason"]
    rows = _rows(X, ROWS)
    for output, fast in scorer.outputs.items():
        want = getattr(model, output)(rows)
        got = fast(rows)
        assert got.shape == want.shape and got.dtype.kind == want.dtype.kind
        if output == "predict" and hasattr(model, "classes_"):
            assert to_json(got.tolist()) == to_json(want.tolist())   # class labels: exactly
        else:
            np.testing.assert_allclose(got, want, **fast_path.TOLERANCE)
    # one row at a time, as unbatched requests come: the same answer as scikit-learn gives
    for row in rows[:50]:
        body = to_json({"data": [row.tolist()]})
        want = to_json(model.predict(row[None, :]).tolist())
        if hasattr(model, "classes_"):
            assert scorer.score([body]) == [want]
        else:
            np.testing.assert_allclose(orjson.loads(scorer.score([body])[0]), model.predict(row[None, :]),
                                       **fast_path.TOLERANCE)


def test_the_converted_graph_is_cached_beside_the_model(stored):
    model, model_dir, _, _ = stored["random forest classifier"]
    first = load_sklearn(model_dir)
    cache = fast_path.cache_dir(model_dir)
    assert cache == model_dir.parent.parent / "fast_path" / model_dir.name
    assert {p.suffix for p in cache.iterdir()} == {".onnx"}   # one graph per input type tried
    again = load_sklearn(model_dir)
    assert "read from the cache" in again.fast_path["reason"] and first.fast_path["path"] == "onnx"


def test_input_the_fast_path_does_not_take_goes_to_scikit_learn(stored):
    model, model_dir, X, _ = stored["logistic pipeline"]
    scorer = load_sklearn(model_dir)
    predict = scorer.outputs["predict"]
    with pytest.raises(ValueError, match="NaN"):   # scikit-learn's own error, not an ONNX answer
        predict(np.array([[np.nan, 1.0, 1.0, 1.0]]))
    with pytest.raises(ValueError, match="features"):
        predict(np.ones((1, 3)))
    x32 = X[:20].astype(np.float32)    # V2 FP32: scikit-learn computes in float32, so it does
    assert predict(x32).tolist() == model.predict(x32).tolist()
    assert predict(X[:5].astype(np.int64)).tolist() == model.predict(X[:5].astype(np.int64)).tolist()
    with pytest.raises(ValueError, match="could not convert string to float"):   # scikit-learn's own error
        scorer.score([b'{"data": [[1, 2, "x", 4]]}'])


def test_fast_path_false_and_required(stored):
    _, model_dir, _, _ = stored["logistic pipeline"]
    off = load_sklearn(model_dir, False)
    assert off.fast_path == {"path": "off", "reason": "fast_path: false in the deployment"}
    assert load_sklearn(model_dir, "required").fast_path["path"] == "onnx"
    _, hist_dir, _, _ = stored["hist gradient boosting (no converter)"]
    with pytest.raises(fast_path.Refused, match="fast_path: required.*skl2onnx cannot convert"):
        load_sklearn(hist_dir, "required")


def test_a_graph_that_disagrees_is_not_used(stored, monkeypatch):
    model, model_dir, X, _ = stored["logistic pipeline"]
    real = fast_path._onnx_outputs

    def off_by_one(session, model_, outputs, expected):
        made = real(session, model_, outputs, expected)
        return {**made, "predict": lambda x: (made["predict"](x) + 1) % 3}
    monkeypatch.setattr(fast_path, "_onnx_outputs", off_by_one)
    scorer = load_sklearn(model_dir)
    assert scorer.fast_path["path"] == "sklearn-unchecked"
    assert "other labels" in scorer.fast_path["reason"]
    assert scorer.outputs["predict"](X).tolist() == model.predict(X).tolist()


def test_request_samples_join_the_probe_rows(tmp_path):
    X, y = _iris()
    model_dir = tmp_path / "models" / ("a" * 64)
    (model_dir / "m").mkdir(parents=True)
    joblib.dump(make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y), model_dir / "m" / "x.pkl")
    (model_dir / "m" / "sample-request.json").write_bytes(to_json({"data": X[:3].tolist()}))
    scorer = load_sklearn(model_dir)
    assert "and 3 request samples" in scorer.fast_path["reason"]


def test_without_onnxruntime_scikit_learn_runs_unchecked(stored, monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_onnxruntime(name, *a, **kw):
        if name == "onnxruntime":
            raise ImportError("no onnxruntime", name="onnxruntime")
        return real_import(name, *a, **kw)
    monkeypatch.setattr(builtins, "__import__", no_onnxruntime)
    model, model_dir, X, _ = stored["logistic pipeline"]
    scorer = load_sklearn(model_dir)
    assert scorer.fast_path["path"] == "sklearn-unchecked" and "onnxruntime is not installed" in \
        scorer.fast_path["reason"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert scorer.outputs["predict"](X).tolist() == model.predict(X).tolist()


def test_other_model_types_say_why_there_is_no_fast_path():
    assert loaders.VectorScorer(lambda x: x).fast_path["path"] == "off"
    assert onnx_convert.INPUT_TYPES == ("double", "float")


_CONVERTS_IN_A_CHILD = '''
import sys, joblib
from pathlib import Path
from modelfleet.runtime import fast_path
from modelfleet.runtime.loaders import load_sklearn
fast_path.warm()
scorer = load_sklearn(Path(sys.argv[1]))
print(scorer.fast_path["path"], "skl2onnx" in sys.modules, "onnx" in sys.modules)
'''


def test_the_converter_runs_in_a_child_and_never_stays_in_the_process(tmp_path):
    import subprocess
    import sys
    X, y = _iris()
    model_dir = tmp_path / "models" / ("b" * 64)
    (model_dir / "m").mkdir(parents=True)
    joblib.dump(make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y), model_dir / "m" / "x.pkl")
    out = subprocess.run([sys.executable, "-c", _CONVERTS_IN_A_CHILD, str(model_dir)], capture_output=True,
                         text=True, check=True, timeout=120).stdout.split()
    assert out == ["onnx", "False", "False"]                 # converted (and cached), converter not loaded here
    assert list((tmp_path / "fast_path" / ("b" * 64)).glob("*.onnx"))


def test_a_converter_that_dies_is_one_line_and_scikit_learn_serves(stored, monkeypatch):
    import os
    model, model_dir, X, _ = stored["ridge pipeline"]
    monkeypatch.setattr(onnx_convert, "_convert", lambda *a: os._exit(9))   # runs in the child only
    for cached in (model_dir.parent.parent / "fast_path" / model_dir.name).glob("*.onnx"):
        cached.unlink()
    scorer = load_sklearn(model_dir)
    assert scorer.fast_path["path"] == "sklearn-unchecked"
    assert "the converter process exited without an answer" in scorer.fast_path["reason"]
    assert scorer.outputs["predict"](X).tolist() == model.predict(X).tolist()


def test_a_refusal_of_the_converter_is_cached_and_not_asked_again(stored, monkeypatch):
    _, model_dir, _, _ = stored["hist gradient boosting (no converter)"]
    first = load_sklearn(model_dir)
    refusals = list((model_dir.parent.parent / "fast_path" / model_dir.name).glob("*.unsupported"))
    assert first.fast_path["path"] == "sklearn-unchecked" and refusals
    monkeypatch.setattr(onnx_convert, "convert", lambda *a: pytest.fail("converted again"))
    again = load_sklearn(model_dir)                               # a reload: the same reason, no fork
    assert again.fast_path == first.fast_path
