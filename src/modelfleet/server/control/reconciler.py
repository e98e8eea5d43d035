"""The reconcile decision as a pure function: (desired, actual, now) -> actions.

No I/O, no clock of its own, no asyncio: the controller reads the store and its replicas into
these frozen values, calls `step`, and carries out what comes back. Unit tests drive it with
plain values; the controller's own tests drive the whole loop with a fake backend and clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Union

from ...schema.wire import DeploymentRecord

Key = tuple[str, str]   # (endpoint, deployment)

# Provisioning states in the store while a change is not yet serving.
PENDING_STATES = frozenset({"Creating", "Updating"})


@dataclass(frozen=True)
class Desired:
    """One deployment row: what should run."""
    spec: DeploymentRecord
    spec_hash: str            # of the fields that change what a replica runs
    active_hash: str | None   # what served last (None before the first success)
    failed_hash: str | None   # a spec that failed and is not retried until it changes
    state: str                # provisioning state in the store
    replicas: int = 1         # how many should serve: instance_count, or the autoscaler's count


@dataclass(frozen=True)
class Actual:
    """One deployment as the controller runs it."""
    hash: str | None = None       # what its serving group runs
    replicas: int = 0             # members of the serving group
    busy: bool = False            # a rollout or scale is under way
    not_before: float = 0.0       # backoff: no new step before this time
    retired: bool = False         # being drained and stopped


@dataclass(frozen=True)
class Rollout:
    """Start a new group for `desired`, switch to it when all are ready, drain the old one."""
    key: Key
    desired: Desired


@dataclass(frozen=True)
class Scale:
    """Start or drain replicas of the serving group until it has `want`."""
    key: Key
    want: int


@dataclass(frozen=True)
class Retire:
    """The row is gone: drain and stop every replica."""
    key: Key


@dataclass(frozen=True)
class Settle:
    """What serves is what is wanted (a revert mid-rollout): record success in the store."""
    key: Key
    spec_hash: str


Action = Union[Rollout, Scale, Retire, Settle]


def step(desired: Mapping[Key, Desired], actual: Mapping[Key, Actual], now: float) -> list[Action]:
    """At most one rollout or scale per deployment, and only where none is under way."""
    actions: list[Action] = [Retire(key) for key, act in actual.items()
                             if key not in desired and not act.retired]
    idle = Actual()
    for key, want in desired.items():
        act = actual.get(key, idle)
        if act.busy or now < act.not_before:
            continue
        if want.spec_hash != act.hash and want.spec_hash != want.failed_hash:
            actions.append(Rollout(key, want))
        elif want.spec_hash == act.hash:
            if want.state in PENDING_STATES:
                actions.append(Settle(key, want.spec_hash))
            if act.replicas != want.replicas:
                actions.append(Scale(key, want.replicas))
    return actions
