"""The controller's record of each replica and its state machine.

    STARTING --ready--> READY --drain--> DRAINING --stopped--> STOPPED
        |                 |                  |
        +----failed-------+------died--------+--> FAILED --stopped--> STOPPED
        +----abandoned (a rollout gave up, the server stops) -------> STOPPED

Every state change goes through `transition`, the one place where listeners (metrics, events)
hook in: the controller's list, handed to each replica it creates; they also hear of each replica
as it is created (old state None), after the replica's `Roster` has. An illegal change is a bug
and raises.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from typing import Callable, Iterator

from ...backends.base import ReplicaHandle

log = logging.getLogger("modelfleet.replicas")


class ReplicaState(str, enum.Enum):
    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"
    FAILED = "failed"
    STOPPED = "stopped"


S = ReplicaState
ALLOWED: dict[ReplicaState, frozenset[ReplicaState]] = {
    S.STARTING: frozenset({S.READY, S.FAILED, S.STOPPED}),
    S.READY: frozenset({S.DRAINING, S.FAILED}),
    S.DRAINING: frozenset({S.STOPPED, S.FAILED}),
    S.FAILED: frozenset({S.STOPPED}),
    S.STOPPED: frozenset(),
}


# (replica, old, new, reason); old is None when the replica was just created (STARTING)
Listener = Callable[["Replica", "ReplicaState | None", ReplicaState, str], None]


@dataclass(eq=False)
class Replica:
    handle: ReplicaHandle
    endpoint: str
    deployment: str
    started_at: float            # the controller's clock
    listeners: list[Listener] = field(default_factory=list)   # the controller's: told of every change
    state: ReplicaState = S.STARTING
    roster: Roster | None = None   # the controller's: told of each change of state

    def __post_init__(self) -> None:
        _notify(self, None, self.state, "created")

    @property
    def id(self) -> str:
        return self.handle.id

    @property
    def busy(self) -> bool:
        """Ready and answering a request now (given-up requests aside): a property of a ready
        replica, never a state of its own."""
        return self.state is S.READY and self.handle.inflight > 0

    def to_dict(self) -> dict:
        return {"id": self.id, **self.handle.describe(), "state": self.state.value,
                "inflight": self.handle.inflight, "busy": self.busy, "started_at": self.started_at}




class IllegalTransition(RuntimeError):
    pass


def transition(replica: Replica, new: ReplicaState, reason: str = "") -> bool:
    """Move `replica` to `new`; False (and nothing happens) when it is already there."""
    old = replica.state
    if old is new:
        return False
    if new not in ALLOWED[old]:
        raise IllegalTransition(f"replica {replica.id}: {old.value} -> {new.value}")
    replica.state = new
    log.debug("%s: %s -> %s %s", replica.id, old.value, new.value, reason)
    _notify(replica, old, new, reason)
    return True


def _notify(replica: Replica, old: ReplicaState | None, new: ReplicaState, reason: str) -> None:
    if replica.roster is not None:   # before the listeners, which may count replicas
        replica.roster.changed(replica, new)
    for listener in replica.listeners:
        try:
            listener(replica, old, new, reason)
        except Exception:  # a listener must never break the controller
            log.exception("replica state listener failed")


class Roster:
    """The controller's replicas not yet stopped, by deployment, as every view counts them
    (replica_states.py). `transition` keeps it: each replica created with a roster tells it of
    every change of state."""

    def __init__(self) -> None:
        self._of: dict[tuple[str, str], dict[Replica, None]] = {}   # insertion-ordered sets, by identity

    def changed(self, replica: Replica, new: ReplicaState) -> None:
        key = (replica.endpoint, replica.deployment)
        if new is not S.STOPPED:
            self._of.setdefault(key, {})[replica] = None
        elif key in self._of:
            self._of[key].pop(replica, None)
            if not self._of[key]:
                del self._of[key]

    def of(self, endpoint: str, deployment: str) -> list[Replica]:
        return list(self._of.get((endpoint, deployment), ()))

    def deployments(self) -> list[tuple[str, str]]:
        return list(self._of)

    def __iter__(self) -> Iterator[Replica]:
        return iter([r for group in self._of.values() for r in group])
