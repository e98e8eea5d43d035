"""How many replicas a deployment has, and in which state: the one count behind every view
(`online-deployment show`, `fleet top`, `/api/stats` and the dashboard, `/metrics`).

A replica is a process of its own, a Ray actor, or a deployment's model in a shared worker (that
deployment's replica there, ready whether its model is loaded or evicted until its next request).
Its state is the controller's (replicas.py): starting, ready, draining or failed. Busy is not a
state: it is a ready replica with a request in flight, counted among the ready ones, never
instead of them. Wanted is how many the deployment should have now: instance_count, or the
autoscaler's count.

Every view counts the same replicas, the controller's `Roster` (replicas.py): each one from its
creation until it is stopped, whether it serves, starts in a rollout or drains after one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterable

from .replicas import Replica, ReplicaState as S

STATES = (S.STARTING, S.READY, S.DRAINING, S.FAILED)   # a replica's state until it is stopped


@dataclass(frozen=True)
class ReplicaCounts:
    wanted: int
    ready: int = 0
    busy: int = 0       # of the ready ones
    starting: int = 0
    draining: int = 0
    failed: int = 0

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    def by_state(self) -> dict[str, int]:
        """Replicas in each state, zeros included (busy is not a state)."""
        return {s.value: getattr(self, s.value) for s in STATES}


def count(replicas: Iterable[Replica], wanted: int) -> ReplicaCounts:
    n = {s: 0 for s in STATES}
    busy = 0
    for r in replicas:
        if r.state in n:
            n[r.state] += 1
            busy += r.busy
    return ReplicaCounts(wanted, n[S.READY], busy, n[S.STARTING], n[S.DRAINING], n[S.FAILED])
