"""Routing snapshots for the gateway, built from the rows read last and the serving groups, and
installed with one `Router.publish`. A snapshot whose inputs are unchanged is kept, so that a
change to one deployment costs a new snapshot of its endpoint, not of the thousand others."""

from __future__ import annotations

from typing import Callable

from ..dataplane.routing import DeploymentSnapshot, EndpointSnapshot, Router, RoutingTable, gate_of
from .deployment_state import DeploymentRuntime
from .desired_state import DesiredState
from .reconciler import Key
from .replicas import ReplicaState as S


class RoutePublisher:
    def __init__(self, router: Router, state: DesiredState, runtimes: dict[Key, DeploymentRuntime],
                 collection: Callable):
        self.router = router
        self._collection = collection   # the controller's collection hub, as it is now (monitoring)
        self._state = state
        self._runtimes = runtimes
        self._published: dict[str, tuple[dict, dict, EndpointSnapshot]] = {}   # endpoint -> its inputs, snapshot
        self.restored = False   # every deployment restored after a start: the gateway may answer 404s

    def publish(self, endpoint: str | None = None) -> None:
        """Every endpoint's snapshot, or only `endpoint`'s after a change to its replicas."""
        if endpoint is not None and endpoint in self._published:
            self._publish_one(endpoint)
            return
        by_endpoint: dict[str, dict[str, DeploymentSnapshot]] = {}
        for (endpoint, name), rt in self._runtimes.items():
            if not rt.retired and rt.spec is not None:
                by_endpoint.setdefault(endpoint, {})[name] = self._deployment_snapshot(rt)
        published, table = {}, {}
        for ep in self._state.endpoints:
            name, deployments = ep["name"], by_endpoint.get(ep["name"], {})
            last = self._published.get(name)
            if last is not None and last[1] == deployments and (last[0] is ep or last[0] == ep):
                snapshot = last[2]
            else:
                snapshot = _endpoint_snapshot(ep, deployments)
            published[name], table[name] = (ep, deployments, snapshot), snapshot
        self._published = published
        self.router.publish(RoutingTable(table, ready=self.restored))

    def _publish_one(self, endpoint: str) -> None:
        ep = self._published[endpoint][0]
        deployments = {name: self._deployment_snapshot(rt) for (e, name), rt in self._runtimes.items()
                       if e == endpoint and not rt.retired and rt.spec is not None}
        snapshot = _endpoint_snapshot(ep, deployments)
        self._published[endpoint] = (ep, deployments, snapshot)
        self.router.publish(RoutingTable({**self.router.table.endpoints, endpoint: snapshot}, ready=self.restored),
                            changed=(endpoint,))

    def _deployment_snapshot(self, rt: DeploymentRuntime) -> DeploymentSnapshot:
        """`rt`'s snapshot: the one published last if its ready replicas and settings are the same."""
        ready = tuple(r.handle for r in rt.group if r.state is S.READY)
        admission = self.router.admission(rt.endpoint, rt.name)
        last = rt.snapshot
        if (last is None or last.replicas != ready or last.model_key != (rt.hash or "")
                or last.settings is not rt.spec.request_settings or last.admission is not admission):
            last = rt.snapshot = DeploymentSnapshot(
                rt.endpoint, rt.name, rt.hash or "", rt.spec.request_settings, ready, admission,
                ready[0].info.get("metadata") or {} if ready else {},
                ((b"azureml-model-deployment", rt.name.encode()),), self._collection().collector(rt))
        return last


def _endpoint_snapshot(ep: dict, deployments: dict[str, DeploymentSnapshot]) -> EndpointSnapshot:
    return EndpointSnapshot.build(ep["name"], gate_of(ep["spec"]), (ep["primary_key"], ep["secondary_key"]),
                                  ep["traffic"], ep["mirror_traffic"], deployments)
