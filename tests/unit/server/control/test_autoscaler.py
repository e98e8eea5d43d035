"""The autoscaler's decision, as pure code."""

from __future__ import annotations

from modelfleet.server.control.autoscaler import SCALE_DOWN_POLLS, ScaleState, decide, initial, needed
from modelfleet.schema.deployment_settings import ScaleSettings

AUTO = ScaleSettings(type="target_utilization", min_instances=1, max_instances=4,
                     target_utilization_percentage=50, polling_interval=1, idle_timeout=60)
TO_ZERO = AUTO.model_copy(update={"min_instances": 0})


def test_enough_replicas_for_the_busy_requests_at_the_target():
    # 4 slots a replica at 50%: 2 busy requests a replica
    assert [needed(AUTO, 4, busy) for busy in (0, 1, 2, 3, 4, 5, 100)] == [1, 1, 1, 2, 2, 3, 4]
    assert needed(TO_ZERO, 4, 0) == 0


def test_grows_at_once_and_shrinks_only_after_several_looks():
    state = ScaleState(want=1)
    assert decide(AUTO, 4, state, busy=8, idle_for=0, now=0) == 4
    for poll in range(1, SCALE_DOWN_POLLS):
        assert decide(AUTO, 4, state, busy=0, idle_for=0, now=poll) == 4
    assert decide(AUTO, 4, state, busy=0, idle_for=0, now=SCALE_DOWN_POLLS) == 1
    assert state.next_poll == SCALE_DOWN_POLLS + AUTO.polling_interval


def test_a_burst_between_quiet_looks_keeps_the_replicas():
    state = ScaleState(want=3)
    decide(AUTO, 4, state, busy=0, idle_for=0, now=0)
    decide(AUTO, 4, state, busy=5, idle_for=0, now=1)      # needs 3 again: the count of lower looks restarts
    for poll in range(2, 2 + SCALE_DOWN_POLLS - 1):
        assert decide(AUTO, 4, state, busy=0, idle_for=0, now=poll) == 3


def test_to_zero_only_after_the_idle_timeout_and_back_at_the_first_request():
    state = ScaleState(want=1)
    assert decide(TO_ZERO, 4, state, busy=0, idle_for=59, now=0) == 1
    assert decide(TO_ZERO, 4, state, busy=0, idle_for=60, now=1) == 0
    assert decide(TO_ZERO, 4, state, busy=1, idle_for=0, now=2) == 1


def test_the_first_count_is_instance_count_within_bounds():
    assert initial(AUTO, 1) == 1 and initial(AUTO, 9) == 4 and initial(TO_ZERO, 0 + 1) == 1
    assert initial(ScaleSettings(type="target_utilization", min_instances=2, max_instances=3), 1) == 2
