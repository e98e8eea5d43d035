"""`fleet.schedules`: model monitors (Azure's monitor schedule YAML), kept and run by the server
(docs/monitoring.md)."""

from __future__ import annotations

from ..schema.monitoring import MonitorScheduleSpec
from .resources import Resource, resources

RUN_TIMEOUT_S = 3600.0   # a monitor over a large window reads and compares every row


class ScheduleOperations:
    def __init__(self, fleet):
        self._f = fleet

    @resources
    def list(self) -> list[Resource]:
        return self._f.request("GET", "/api/schedules")

    @resources
    def create_or_update(self, spec: MonitorScheduleSpec) -> Resource:
        """The server checks the document again, and that its reference data exist."""
        return self._f.request("PUT", f"/api/schedules/{spec.name}", json=spec.data())

    @resources
    def get(self, name: str) -> Resource:
        """The schedule, and its latest run's result per signal, feature and metric (`latest_run`)."""
        return self._f.request("GET", f"/api/schedules/{name}")

    @resources
    def enable(self, name: str) -> Resource:
        return self._f.request("PUT", f"/api/schedules/{name}/enabled", json={"enabled": True})

    @resources
    def disable(self, name: str) -> Resource:
        return self._f.request("PUT", f"/api/schedules/{name}/enabled", json={"enabled": False})

    def delete(self, name: str) -> None:
        self._f.request("DELETE", f"/api/schedules/{name}")

    def run(self, name: str) -> dict:
        """Run the monitor now, in the server; the run with every result."""
        return self._f.request("POST", f"/api/schedules/{name}/run", timeout=RUN_TIMEOUT_S)

    def runs(self, name: str, limit: int = 100) -> list[dict]:
        """The newest `limit` runs, oldest first."""
        return self._f.request("GET", f"/api/schedules/{name}/runs", params={"limit": limit})
