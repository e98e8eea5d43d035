"""Spare replicas: one more replica while every replica of a deployment is stuck in a model call.

A replica whose current model call is far older than its calls usually take (backends/calls.py's
`overdue_after`) gets nothing new from routing. When every replica of a deployment is so (or has
requests timed out on it, or missed a probe), the gateway holds the requests that arrive and tells
the controller (`Admission.on_stall`), which starts a spare: at most `scale_settings.spare_instances`
beyond the count it wants, and within `max_instances` when autoscaled. A spare stands in for the
next replica lost (the supervisor kills a replica whose call passes the request timeout), so a hang
costs one start, not two; spares still there once no replica has been stuck for `CALM_S` stop.

Pure decisions over plain values; the controller carries them out (controller.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from ...schema.deployment_settings import ScaleSettings

CALM_S = 10.0   # how long no replica must be stuck before the spares stop


@dataclass
class SpareState:
    """What the controller keeps per deployment between looks."""
    count: int = 0                    # replicas wanted beyond the deployment's own count
    calm_since: float | None = None   # since when no replica was stuck (with spares running)


def limit(settings: ScaleSettings, wanted: int) -> int:
    """How many spares a deployment that wants `wanted` replicas may have."""
    if settings.autoscaled:
        return max(0, min(settings.spare_instances, settings.max_instances - wanted))
    return settings.spare_instances


def on_stall(state: SpareState, allowed: int, starting: bool) -> bool:
    """Every replica is stuck while a request waits: whether to start one more spare (not while a
    replica is starting already: it will take the request)."""
    if starting or state.count >= allowed:
        return False
    state.count += 1
    state.calm_since = None
    return True


def look(state: SpareState, stuck: bool, now: float) -> None:
    """A periodic look at a deployment with spares: `stuck` whether any replica still is."""
    if not state.count:
        return
    if stuck:
        state.calm_since = None
    elif state.calm_since is None:
        state.calm_since = now
    elif now - state.calm_since >= CALM_S:
        state.count, state.calm_since = 0, None


def stood_in(state: SpareState) -> None:
    """A replica was lost: a spare, if there is one, takes its place."""
    if state.count:
        state.count -= 1
