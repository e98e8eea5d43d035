"""Carrying out a plan with the SDK: models, then endpoints, then every deployment at once, then
traffic, then deletions.

Deployments are sent to the server one after another (quick) and then waited for in parallel
threads, so independent rollouts overlap. One failure does not stop the others: the server keeps
the failed deployment's previous version serving, and its endpoint's traffic and deletions are
left alone so nothing is routed to it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

from ..domain.errors import FleetError
from .planner import Change, Plan

MAX_PARALLEL = 8


@dataclass
class Outcome:
    change: Change
    ok: bool
    message: str = ""
    detail: str | None = None
    skipped: bool = False  # not tried, because something it depends on failed

    @property
    def status(self) -> str:
        return "ok" if self.ok else "skipped" if self.skipped else "failed"

    def to_dict(self) -> dict:
        return {**self.change.to_dict(), "status": self.status, "message": self.message,
                **({"detail": self.detail} if self.detail else {})}


Progress = Callable[[Change, str, str], None]  # (change, "running" | "ok" | "failed" | "skipped", text)


def _quiet(_change: Change, _state: str, _text: str) -> None:
    pass


class Applier:
    def __init__(self, fleet, *, timeout: float = 600.0, progress: Progress | None = None):
        self.fleet = fleet
        self.timeout = timeout
        self.progress = progress or _quiet
        self.outcomes: list[Outcome] = []
        self.failed_endpoints: set[str] = set()

    def _record(self, change: Change, ok: bool, message: str, detail: str | None = None, *,
                skipped: bool = False) -> None:
        outcome = Outcome(change, ok, message, detail, skipped)
        self.outcomes.append(outcome)
        self.progress(change, outcome.status, message)

    def _run(self, change: Change, action: Callable[[], str]) -> bool:
        self.progress(change, "running", "")
        try:
            message = action()
        except FleetError as e:
            self._record(change, False, e.message, e.detail)
            return False
        self._record(change, True, message)
        return True

    def apply(self, plan: Plan) -> list[Outcome]:
        for c in plan.of("model"):
            self._run(c, lambda c=c: self._model(c))
        endpoints = plan.of("endpoint", "create", "update")
        for c in endpoints:
            self.progress(c, "running", "")
        for c, (ok, message, detail) in zip(endpoints, self._parallel(endpoints, self._endpoint), strict=True):
            self._record(c, ok, message, detail)
            if not ok:
                self.failed_endpoints.add(c.name)
        self._deployments(plan.of("deployment", "create", "update"))
        for c in plan.of("traffic"):
            self._unless_failed(c, c.payload["endpoint"], lambda c=c: self._traffic(c))
        for c in plan.of("deployment", "delete"):
            self._unless_failed(c, c.payload["endpoint"], lambda c=c: self._delete_deployment(c))
        for c in plan.of("endpoint", "delete"):
            self._run(c, lambda c=c: self._delete_endpoint(c))
        return self.outcomes

    def _unless_failed(self, change: Change, endpoint: str, action: Callable[[], str]) -> None:
        if endpoint in self.failed_endpoints:
            self._record(change, False, f"skipped: a change to endpoint {endpoint} failed", skipped=True)
        else:
            self._run(change, action)

    # -- the steps -----------------------------------------------------------------------------

    def _model(self, c: Change) -> str:
        p = c.payload
        if c.action == "update":
            self.fleet.models.update(p["name"], p["version"], description=p["description"], tags=p["tags"],
                                     remove_tags=p["remove_tags"])
            for label in p.get("labels", []):
                self.fleet.models.label(p["name"], p["version"], label)
            return f"updated {c.name}"
        spec = p["spec"]
        m = self.fleet.models.register(spec.name, spec.path, spec.version, description=spec.description,
                                       tags=spec.tags, type=spec.type, exist_ok=spec.version is not None,
                                       reuse_same_content=spec.version is None)
        for label in spec.labels:
            self.fleet.models.label(m.name, m.version, label)
        p["registered"] = m.ref
        return f"registered {m.ref}"

    def _endpoint(self, c: Change) -> str:
        spec = c.payload["spec"]
        # exist_ok=True: an update is the same full PUT, so removed tags really go away
        self.fleet.online_endpoints.create(spec.name, spec=spec, exist_ok=c.action == "update")
        return f"{c.action}d {c.name}"

    @staticmethod
    def _parallel(changes: list[Change], action: Callable[[Change], str]) -> list[tuple[bool, str, str | None]]:
        """`action` on every change, MAX_PARALLEL at a time (the server takes many writes at once
        better than one after another: one reconcile pass covers several); (ok, message, detail)
        of each, in order."""
        def attempt(c: Change) -> tuple[bool, str, str | None]:
            try:
                return True, action(c), None
            except FleetError as e:
                return False, e.message, e.detail
        if len(changes) < 2:
            return [attempt(c) for c in changes]
        with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(changes))) as pool:
            return list(pool.map(attempt, changes))

    def _deployments(self, changes: list[Change]) -> None:
        ready = [c for c in changes if self._can_put(c)]
        started = []
        for c, (ok, message, detail) in zip(ready, self._parallel(ready, self._put), strict=True):
            if ok:
                started.append(c)
            else:
                self._record(c, False, message, detail)
                self.failed_endpoints.add(c.payload["spec"].endpoint_name)
        if not started:
            return
        with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(started))) as pool:
            results = list(pool.map(self._wait, started))
        for c, (ok, message, detail) in zip(started, results):
            self._record(c, ok, message, detail)
            if not ok:
                self.failed_endpoints.add(c.payload["spec"].endpoint_name)

    def _can_put(self, c: Change) -> bool:
        """Whether what the deployment needs is there (else it is recorded as skipped); its model
        reference as registered goes into the payload."""
        spec = c.payload["spec"]
        self.progress(c, "running", "")
        if spec.endpoint_name in self.failed_endpoints:
            self._record(c, False, f"skipped: endpoint {spec.endpoint_name} could not be created or updated",
                         skipped=True)
            return False
        source = c.payload.get("model_change")
        if source is not None and source.action == "create":
            if source.payload.get("registered") is None:
                self._record(c, False, f"skipped: model {source.name} was not registered", skipped=True)
                self.failed_endpoints.add(spec.endpoint_name)
                return False
            c.payload["model"] = source.payload["registered"]
        return True

    def _put(self, c: Change) -> str:
        spec = c.payload["spec"]
        self.fleet.online_deployments.create_or_update(
            spec.model_copy(update={"model": c.payload["model"]}), create=c.action == "create", wait=False)
        return "sent"

    def _wait(self, c: Change) -> tuple[bool, str, str | None]:
        spec = c.payload["spec"]
        try:
            dep = self.fleet.online_deployments.wait(spec.endpoint_name, spec.name, self.timeout)
        except FleetError as e:
            return False, e.message, e.detail
        verb = "created" if c.action == "create" else "updated"
        return True, f"{verb}; serves {dep['model']} on {len(dep['replicas'])} replica(s)", None

    def _traffic(self, c: Change) -> str:
        p = c.payload
        ep = self.fleet.online_endpoints.update(p["endpoint"], traffic=p["traffic"],
                                                mirror_traffic=p["mirror_traffic"])
        return "traffic " + (" ".join(f"{k}={v}" for k, v in ep["traffic"].items()) or "none")

    def _delete_deployment(self, c: Change) -> str:
        self.fleet.online_deployments.delete(c.payload["name"], c.payload["endpoint"])
        return "deleted"

    def _delete_endpoint(self, c: Change) -> str:
        self.fleet.online_endpoints.delete(c.payload["name"])
        return "deleted"


def apply_plan(fleet, plan: Plan, *, timeout: float = 600.0, progress: Progress | None = None) -> list[Outcome]:
    return Applier(fleet, timeout=timeout, progress=progress).apply(plan)
