"""Routing snapshots: what the gateway reads on every request, published whole by the controller.

The controller builds a new `RoutingTable` of frozen snapshots after every change (replicas,
traffic, keys, request settings) and installs it with `Router.publish`: one assignment, so a
request sees the old table or the new one, never a mix. The mutable part of routing, the
admission counters, lives apart in `Admission` objects that outlive snapshots (see admission.py).
"""

from __future__ import annotations

import asyncio
import bisect
import random
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from ...backends.base import ReplicaHandle
from ...schema.deployment_settings import RequestSettings
from .admission import Admission


@dataclass(frozen=True, slots=True, eq=False)
class DeploymentSnapshot:
    endpoint: str
    name: str
    model_key: str
    settings: RequestSettings
    replicas: tuple[ReplicaHandle, ...]        # ready ones only
    admission: Admission
    metadata: Mapping = field(default_factory=dict)   # the model's tensors, as its replica reported
    header: tuple = ()                          # the response header naming this deployment
    collector: object | None = None             # collection.payload.PayloadCollector, when it collects

    @property
    def timeout_s(self) -> float:
        return self.settings.request_timeout_ms / 1000.0

    def pick(self, now: float | None = None) -> ReplicaHandle | None:
        """The open replica with the fewest requests in flight, among those that answer their
        probes, have no request stuck past its timeout and are not in a model call far older than
        usual (None if no replica qualifies: a request waits for one, and the deployment may start
        a spare, rather than queue behind a call that may never end). `now`: the event loop's time."""
        if now is None:
            now = asyncio.get_running_loop().time()
        best = None
        for r in self.replicas:
            if (best is None or r.inflight < best.inflight) and free(r, now):
                best = r
        return best


def free(r: ReplicaHandle, now: float) -> bool:
    """Whether a replica may take a new request at `now`: open, answering its probes, with no
    request timed out on it and no model call far older than usual."""
    return not r.closed and r.responsive and not r.late and r.overdue_at > now


class NoCollection:
    """A deployment's data collection when monitoring is not installed (collection/hub.py is)."""

    def collector(self, rt) -> None:
        return None

    def replica_env(self, rt, spec) -> dict[str, str]:
        return spec.environment_variables


NO_COLLECTION = NoCollection()


LOCAL = "local"   # the gate of a `--local` endpoint: a key, except for clients on this machine


def gate_of(spec: dict) -> str:
    """How the gateway admits an endpoint's requests: its auth_mode, or LOCAL for a key endpoint
    made with --local (Azure's local endpoints take requests without a key)."""
    mode = spec.get("auth_mode", "key")
    return LOCAL if mode == "key" and spec.get("local") else mode


def from_loopback(client: tuple[str, int] | None, headers: dict) -> bool:
    """A client on this machine, not relayed by a proxy (which would make anyone look local)."""
    if not client or b"x-forwarded-for" in headers or b"forwarded" in headers:
        return False
    return client[0] == "::1" or client[0].startswith("127.")


@dataclass(frozen=True, slots=True, eq=False)
class EndpointSnapshot:
    name: str
    auth_mode: str                                # key, none or LOCAL (gate_of)
    keys: tuple[bytes, ...]
    deployments: Mapping[str, DeploymentSnapshot]
    weights: tuple[int, ...] = ()                 # cumulative percent
    live: tuple[DeploymentSnapshot, ...] = ()
    mirror: DeploymentSnapshot | None = None
    mirror_pct: float = 0.0

    @classmethod
    def build(cls, name: str, auth_mode: str, keys: tuple[str, ...], traffic: Mapping[str, int],
              mirror: Mapping[str, int], deployments: Mapping[str, DeploymentSnapshot]) -> "EndpointSnapshot":
        weights, live, total = [], [], 0
        for dep, pct in sorted(traffic.items()):
            if pct > 0 and dep in deployments:
                total += pct
                weights.append(total)
                live.append(deployments[dep])
        mirror_to, mirror_pct = None, 0.0
        for dep, pct in mirror.items():
            if pct > 0 and dep in deployments:
                mirror_to, mirror_pct = deployments[dep], pct / 100.0
        return cls(name, auth_mode, tuple(k.encode() for k in keys), deployments, tuple(weights),
                   tuple(live), mirror_to, mirror_pct)

    def choose(self) -> DeploymentSnapshot | None:
        """A deployment by traffic weight, for a request that names none."""
        if not self.live:
            return None
        if len(self.live) == 1:
            return self.live[0]
        return self.live[bisect.bisect_right(self.weights, random.random() * self.weights[-1])]


@dataclass(frozen=True, slots=True)
class RoutingTable:
    endpoints: Mapping[str, EndpointSnapshot] = field(default_factory=dict)
    ready: bool = False     # every endpoint restored after a (re)start


class Router:
    """Holds the current table; the gateway reads `table`, the controller calls `publish`."""

    def __init__(self):
        self.table = RoutingTable()
        self._admissions: dict[tuple[str, str], Admission] = {}

    def admission(self, endpoint: str, name: str) -> Admission:
        """The deployment's long-lived admission counters (made on first use)."""
        key = (endpoint, name)
        adm = self._admissions.get(key)
        if adm is None:
            adm = self._admissions[key] = Admission()
        return adm

    def publish(self, table: RoutingTable, changed: Iterable[str] | None = None) -> None:
        """Install `table`. `changed`: the only endpoints whose snapshots may differ from the last
        table's (None: any); a snapshot kept from the last table has its admissions sized already."""
        old, self.table = self.table.endpoints, table
        if changed is not None:
            for name in changed:
                self._resize(old.get(name), table.endpoints.get(name))
            return
        present = set()
        for name, ep in table.endpoints.items():
            present.update((ep.name, dep) for dep in ep.deployments)
            self._resize(old.get(name), ep)
        for key in [k for k in self._admissions if k not in present]:
            self._admissions.pop(key).resize(0, 0)   # gone: its waiters time out as unavailable

    def _resize(self, before: EndpointSnapshot | None, after: EndpointSnapshot | None) -> None:
        if before is after:
            return
        for dep in after.deployments.values() if after else ():
            dep.admission.resize(dep.settings.max_concurrent_requests_per_instance * len(dep.replicas),
                                 dep.settings.max_queue_size)
        if before is None:
            return
        for name in before.deployments.keys() - (after.deployments.keys() if after else set()):
            adm = self._admissions.pop((before.name, name), None)
            if adm is not None:
                adm.resize(0, 0)   # gone: its waiters time out as unavailable
