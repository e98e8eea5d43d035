"""How many replicas an autoscaled deployment wants, as a pure decision over what the gateway saw.

The signal is concurrency, the thing a replica's capacity is made of: the most requests that were
in flight or queued at once (`busy`) since the last look. A deployment wants enough replicas for
`busy` to fill `target_utilization_percentage` of their slots (max_concurrent_requests_per_instance
each), between `min_instances` and `max_instances`. It grows at once and shrinks only once the
smaller count has been enough for `SCALE_DOWN_POLLS` looks in a row, so a pause between bursts
does not stop replicas that are about to be needed. With `min_instances: 0` it keeps one replica
until nothing has come for `idle_timeout` seconds, and a request that arrives at zero asks for one
at once (the gateway holds it meanwhile).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ...schema.deployment_settings import ScaleSettings

SCALE_DOWN_POLLS = 5


@dataclass
class ScaleState:
    """What the controller keeps per autoscaled deployment between looks."""
    want: int
    next_poll: float = 0.0
    lower_since: int = 0          # consecutive looks that wanted fewer replicas than `want`


def needed(settings: ScaleSettings, slots_per_replica: int, busy: int) -> int:
    """Replicas for `busy` requests at the target utilization, within the settings' bounds."""
    per_replica = slots_per_replica * settings.target_utilization_percentage / 100.0
    count = math.ceil(busy / per_replica) if busy else 0
    return max(settings.min_instances, min(settings.max_instances, count))


def decide(settings: ScaleSettings, slots_per_replica: int, state: ScaleState, busy: int,
           idle_for: float, now: float) -> int:
    """The new `state.want` after one look: `busy` requests at most since the last look,
    `idle_for` seconds since the last request arrived."""
    target = needed(settings, slots_per_replica, busy)
    if target == 0 and idle_for < settings.idle_timeout:
        target = 1   # min_instances 0: stop the last replica only once idle
    if target > state.want:
        state.want, state.lower_since = target, 0
    elif target < state.want:
        state.lower_since += 1
        if state.lower_since >= SCALE_DOWN_POLLS or (target == 0 and idle_for >= settings.idle_timeout):
            state.want, state.lower_since = target, 0
    else:
        state.lower_since = 0
    state.next_poll = now + settings.polling_interval
    return state.want


def initial(settings: ScaleSettings, instance_count: int) -> int:
    """Replicas to start with: `instance_count`, kept within the autoscaler's bounds."""
    return max(settings.min_instances, min(settings.max_instances, instance_count))
