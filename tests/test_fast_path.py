"""The fast path end to end, on a real server and real replicas: a deployment on ONNX answers as
scikit-learn does (Azure JSON and V2), a model without a converter still serves on scikit-learn
and `show` says why, `fast_path: false` and `fast_path: required` are honoured, and the graph is
converted once per model version (a second deployment reads it from the cache)."""

from __future__ import annotations

import httpx
import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

from modelfleet.domain.errors import FleetError

pytestmark = pytest.mark.slow   # every test here starts a server and replicas


def _model(folder, model):
    X, y = load_iris(return_X_y=True)
    folder.mkdir(parents=True)
    joblib.dump(model.fit(X, y), folder / "model.joblib")
    return model


def _rows(n: int = 300):
    X, _ = load_iris(return_X_y=True)
    rng = np.random.default_rng(7)
    return np.round(X[rng.integers(0, len(X), n)] + rng.normal(0, 0.3, (n, 4)), 2)


def test_fast_path_deployments_answer_as_scikit_learn_and_show_why(fleet, tmp_path):
    f = fleet
    forest = _model(tmp_path / "forest", RandomForestClassifier(n_estimators=40, random_state=0))
    hist = _model(tmp_path / "hist", HistGradientBoostingClassifier(max_iter=10))
    f.models.register("forest", tmp_path / "forest", "1")
    f.models.register("hist", tmp_path / "hist", "1")
    f.online_endpoints.create("fast")
    on = f.online_deployments.create("blue", "fast", "forest:1", all_traffic=True)
    off = f.online_deployments.create("green", "fast", "forest:1", fast_path=False, placement="dedicated")
    assert (on["fast_path"], on["fast_path_used"]) == (True, "onnx")
    assert "verified against scikit-learn" in on["fast_path_reason"]
    assert (off["fast_path"], off["fast_path_used"], off["fast_path_reason"]) == \
        (False, "off", "fast_path: false in the deployment")

    rows = _rows()
    want = forest.predict(rows).tolist()
    for deployment in ("blue", "green"):   # Azure JSON, many rows and one row at a time
        assert f.online_endpoints.invoke("fast", {"data": rows.tolist()}, deployment_name=deployment) == want
        assert [f.online_endpoints.invoke("fast", {"input_data": [r]}, deployment_name=deployment)[0]
                for r in rows[:40].tolist()] == want[:40]
    ep = f.online_endpoints.get("fast")
    base = ep["scoring_uri"].split("/endpoints/")[0]
    v2 = httpx.post(f"{base}/v2/models/fast/infer", timeout=30,
                    headers={"authorization": f"Bearer {f.online_endpoints.get_keys('fast')['primaryKey']}"},
                    json={"inputs": [{"name": "input-0", "datatype": "FP64", "shape": list(rows.shape),
                                      "data": rows.ravel().tolist()}]}).json()
    outputs = {o["name"]: o for o in v2["outputs"]}
    assert outputs["predict"]["data"] == want
    np.testing.assert_allclose(np.reshape(outputs["predict_proba"]["data"], (len(rows), 3)),
                               forest.predict_proba(rows), rtol=1e-5, atol=1e-6)

    # converted once per model version: another deployment of it reads the graph from the cache
    again = f.online_deployments.create("red", "fast", "forest:1", placement="dedicated")
    assert again["fast_path_used"] == "onnx" and "read from the cache" in again["fast_path_reason"]

    # no converter: still serves, on scikit-learn without its checks, and show says why
    f.online_endpoints.create("no-onnx")
    dep = f.online_deployments.create("blue", "no-onnx", "hist:1", all_traffic=True)
    assert dep["fast_path_used"] == "sklearn-unchecked"
    assert "skl2onnx cannot convert" in dep["fast_path_reason"]
    assert f.online_endpoints.invoke("no-onnx", {"data": rows.tolist()}) == hist.predict(rows).tolist()
    with pytest.raises(FleetError, match="features"):   # the wrong width: scikit-learn's own refusal
        f.online_endpoints.invoke("fast", {"data": [[1.0, 2.0, 3.0]]})

    # required: a model without a verified graph does not start, and the deployment says why
    with pytest.raises(FleetError, match="fast_path: required"):
        f.online_deployments.create("green", "no-onnx", "hist:1", fast_path="required", timeout=60)
    assert f.online_deployments.create("required", "fast", "forest:1", fast_path="required",
                                       placement="dedicated")["fast_path_used"] == "onnx"
    updated = f.online_deployments.update("blue", "fast", fast_path=False)
    assert (updated["fast_path"], updated["fast_path_used"]) == (False, "off")
    assert f.online_endpoints.invoke("fast", {"data": rows.tolist()}) == want
