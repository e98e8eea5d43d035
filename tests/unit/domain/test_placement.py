"""Where a deployment runs: shared by default for no-code models, dedicated for code or environments."""

from __future__ import annotations

import pytest

from modelfleet.domain.errors import InvalidInput, SpecError
from modelfleet.server.http.views import where_it_runs
from modelfleet.domain.placement import default_placement, resolve_placement, written_placement
from modelfleet.schema.documents import DeploymentSpec
from modelfleet.schema.validation import validate
from modelfleet.schema.wire import DeploymentRecord
from modelfleet.store.serving import replica_hash

DEPLOYMENT = {"name": "blue", "endpoint_name": "iris-ep", "model": "iris:1"}
CODE = {"code": "./src", "scoring_script": "score.py"}


@pytest.mark.parametrize("model_type, code, env, environment, expected", [
    ("sklearn", False, {}, False, "shared"), ("onnx", False, {}, False, "shared"),
    ("mlflow", False, {}, False, "shared"),
    ("sklearn", True, {}, False, "dedicated"),           # a score.py may do anything in init()
    ("custom", True, {}, False, "dedicated"),
    ("sklearn", False, {"OMP_NUM_THREADS": "4"}, False, "dedicated"),   # a process environment of its own
    ("mlflow", False, {}, True, "dedicated"),            # another Python than the server's
])
def test_the_default_placement(model_type, code, env, environment, expected):
    where = dict(code=code, environment_variables=env, environment=environment)
    assert default_placement(model_type, **where) == expected
    assert resolve_placement(None, model_type, **where) == expected
    assert resolve_placement("dedicated", model_type, **where) == "dedicated"


def test_shared_is_refused_where_it_cannot_apply():
    plain = dict(code=False, environment_variables={}, environment=False)
    with pytest.raises(InvalidInput, match="^placement: shared does not apply: a scoring script"):
        resolve_placement("shared", "sklearn", **{**plain, "code": True})
    with pytest.raises(InvalidInput, match="environment_variables"):
        resolve_placement("shared", "sklearn", **{**plain, "environment_variables": {"A": "1"}})
    with pytest.raises(InvalidInput, match="has its own Python"):
        resolve_placement("shared", "mlflow", **{**plain, "environment": True})
    with pytest.raises(InvalidInput, match="type custom"):
        resolve_placement("shared", "custom", **plain)


def test_the_field_in_a_deployment_document():
    assert validate(DeploymentSpec, DEPLOYMENT).placement is None
    assert validate(DeploymentSpec, {**DEPLOYMENT, "placement": "dedicated"}).placement == "dedicated"
    with pytest.raises(SpecError, match="placement"):
        validate(DeploymentSpec, {**DEPLOYMENT, "placement": "everywhere"})
    with pytest.raises(SpecError, match="^d.yaml: placement: shared does not apply: a scoring script"):
        validate(DeploymentSpec, {**DEPLOYMENT, "placement": "shared", "code_configuration": CODE}, "d.yaml")


def test_a_record_knows_its_placement():
    record = {"model": "iris:1", "model_type": "sklearn", "model_sha256": "0" * 64}
    assert DeploymentRecord.model_validate(record).effective_placement == "shared"
    assert DeploymentRecord.model_validate({**record, "placement": "dedicated"}).effective_placement == "dedicated"
    assert DeploymentRecord.model_validate({**record, "environment": "py-env:1"}).effective_placement == "dedicated"


def test_placement_changes_what_runs_but_leaves_old_hashes_alone():
    spec = {"model": "iris:1", "model_type": "sklearn", "model_sha256": "0" * 64, "batching": {}}
    assert replica_hash(spec) == replica_hash({**spec, "placement": None})   # unset: the hash it always had
    assert replica_hash({**spec, "placement": "dedicated"}) != replica_hash(spec)
    assert replica_hash({**spec, "placement": "dedicated"}) != replica_hash({**spec, "placement": "shared"})


def test_show_says_where_the_model_runs():
    spec = {"model": "iris:1", "model_type": "sklearn"}
    fast = {"path": "onnx", "reason": "verified"}
    shared = {"placement": "shared", "loaded": False, "last_load_ms": 4.5, "fast_path": fast}
    assert where_it_runs(spec, [shared, {**shared, "loaded": True, "last_load_ms": 3.0}]) == \
        {"placement": "shared", "loaded": False, "last_load_ms": 4.5, "fast_path_used": "onnx",
         "fast_path_reason": "verified"}
    assert where_it_runs({**spec, "placement": "dedicated"}, []) == \
        {"placement": "dedicated", "loaded": False, "last_load_ms": None, "fast_path_used": None,
         "fast_path_reason": None}


def test_a_view_copied_into_a_document_pins_only_a_placement_that_is_not_the_default():
    view = {"model_type": "sklearn", "code": None, "environment_variables": {}, "placement": "shared"}
    assert written_placement(view) is None                       # the default: it follows the model
    assert written_placement({**view, "placement": "dedicated"}) == "dedicated"
    assert written_placement({**view, "code": {"sha256": "0" * 64}, "placement": "dedicated"}) is None
