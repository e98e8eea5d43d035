"""The pure reconcile decision: (desired, actual, now) -> actions."""

from __future__ import annotations

from modelfleet.server.control.reconciler import Actual, Desired, Retire, Rollout, Scale, Settle, step
from modelfleet.schema.wire import DeploymentRecord

KEY = ("ep", "blue")


def desired(spec_hash="h2", active="h1", failed=None, state="Updating", count=1) -> Desired:
    spec = DeploymentRecord(model="m:1", model_type="sklearn", model_sha256="0" * 64, instance_count=count)
    return Desired(spec, spec_hash, active, failed, state, count)


def test_a_new_spec_is_rolled_out():
    want = desired()
    assert step({KEY: want}, {}, 0) == [Rollout(KEY, want)]
    assert step({KEY: want}, {KEY: Actual("h1", 1)}, 0) == [Rollout(KEY, want)]


def test_nothing_while_a_step_is_under_way_or_backing_off():
    assert step({KEY: desired()}, {KEY: Actual("h1", 1, busy=True)}, 0) == []
    assert step({KEY: desired()}, {KEY: Actual("h1", 1, not_before=5.0)}, 4.9) == []
    assert step({KEY: desired()}, {KEY: Actual("h1", 1, not_before=5.0)}, 5.0) != []


def test_a_failed_spec_is_not_retried_until_it_changes():
    assert step({KEY: desired(spec_hash="h2", failed="h2")}, {KEY: Actual("h1", 1)}, 0) == []


def test_the_serving_spec_scales_to_its_instance_count():
    settled = dict(spec_hash="h1", active="h1", state="Succeeded")
    assert step({KEY: desired(**settled, count=3)}, {KEY: Actual("h1", 1)}, 0) == [Scale(KEY, 3)]
    assert step({KEY: desired(**settled, count=1)}, {KEY: Actual("h1", 3)}, 0) == [Scale(KEY, 1)]
    assert step({KEY: desired(**settled, count=1)}, {KEY: Actual("h1", 1)}, 0) == []


def test_a_revert_to_what_serves_settles_the_row():
    want = desired(spec_hash="h1", active="h1", state="Updating")
    assert step({KEY: want}, {KEY: Actual("h1", 1)}, 0) == [Settle(KEY, "h1")]


def test_a_row_that_is_gone_is_retired_once():
    assert step({}, {KEY: Actual("h1", 1)}, 0) == [Retire(KEY)]
    assert step({}, {KEY: Actual("h1", 1, retired=True)}, 0) == []


def test_deployments_are_decided_independently():
    other = ("ep", "green")
    actions = step({KEY: desired(), other: desired(spec_hash="g", active="g", state="Succeeded", count=2)},
                   {KEY: Actual("h1", 1, busy=True), other: Actual("g", 1)}, 0)
    assert actions == [Scale(other, 2)]
