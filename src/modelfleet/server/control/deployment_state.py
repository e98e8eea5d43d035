"""What the controller knows of each deployment while the server runs: its serving group of
replicas, what they run, the step in progress, its failures and backoff, its autoscaling."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from ...schema.wire import DeploymentRecord
from ..dataplane.routing import DeploymentSnapshot
from . import autoscaler, spares
from .reconciler import Actual, Desired, Key
from .replicas import Replica

BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 30.0
HEALTHY_AFTER_S = 60.0     # a replica up this long (or that answered a request) forgives earlier crashes
CRASH_LOOP_AFTER = 3       # consecutive failed starts or early deaths before health says CrashLoop


@dataclass(eq=False)
class DeploymentRuntime:
    endpoint: str
    name: str
    group: list[Replica] = field(default_factory=list)   # the serving replicas
    hash: str | None = None                # what the group runs
    spec: DeploymentRecord | None = None   # the newest desired spec (settings apply in place)
    busy: asyncio.Task | None = None       # the one rollout or scale in progress
    failures: int = 0                      # consecutive failures, for backoff
    not_before: float = 0.0                # clock time before which no new step starts
    serial: int = 0                        # replica numbering
    retired: bool = False
    fault: str | None = None               # why it has fewer replicas than wanted, if it does
    restarts: int = 0                      # replicas lost and replaced since the server started
    last_failure: str | None = None        # why the last one was lost
    scale: autoscaler.ScaleState | None = None   # autoscaled deployments only
    spare: spares.SpareState = field(default_factory=spares.SpareState)   # while every replica is stuck
    seen_arrivals: int = 0                 # the admission's arrivals when last looked at
    last_active: float = 0.0               # when a request was last seen (clock time)
    demand_at: float | None = None         # when a request came while it had no replica
    cold_start_ms: float | None = None     # from that request to a ready replica, last time
    desired: Desired | None = None         # its row as last read, before the autoscaler's count
    snapshot: DeploymentSnapshot | None = None   # as last published

    @property
    def key(self) -> Key:
        return (self.endpoint, self.name)

    def actual(self) -> Actual:
        return Actual(self.hash, len(self.group), self.busy is not None, self.not_before, self.retired)

    def backoff(self, now: float) -> float:
        """Count a failure and hold off the next step: 100 ms doubling to 30 s. The delay."""
        self.failures += 1
        delay = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (self.failures - 1))
        self.not_before = now + delay
        return delay
