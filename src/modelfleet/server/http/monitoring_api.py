"""Model monitoring in the server: the deployments' data collectors, the monitor scheduler, their
figures at /metrics, and `POST /api/schedules/{name}/run`, `GET /api/monitoring` (the dashboard's
series: each monitor's runs, each feature's metric over time)."""

from __future__ import annotations

from fastapi import Depends, FastAPI

from ...monitoring.data_assets import DataAssets
from ...monitoring.prometheus import MonitoringCollector
from ...collection.hub import CollectionHub
from ...monitoring.scheduler import Monitoring
from ...store.monitoring import ScheduleStore

RUNS_SHOWN = 100


def install(app) -> Monitoring:
    """Hook monitoring into a ServerApp: its controller gets the collectors, its API the routes."""
    ws, controller = app.ws, app.controller
    hub = CollectionHub(ws.path)
    controller.collection = hub
    schedules = ScheduleStore(app.db)
    monitoring = Monitoring(schedules, DataAssets(app.db, app.stores.artifacts, ws.path), ws.path)
    monitoring.runs_here = lambda: controller.leading   # one server runs due monitors: the leader
    app.telemetry.metrics.registry.register(MonitoringCollector(hub, monitoring))
    add_routes(app.api, monitoring, schedules)
    return monitoring


def add_routes(api: FastAPI, monitoring: Monitoring, schedules: ScheduleStore) -> None:
    deps = [Depends(api.state.admin)]

    @api.post("/api/schedules/{name}/run", dependencies=deps)
    async def run_schedule(name: str) -> dict:
        """Run a monitor now (what `fleet schedule run` does); the run with every result."""
        return await monitoring.run_async(name)

    @api.get("/api/monitoring", dependencies=deps)
    async def monitoring_series() -> dict:
        """Each schedule's recent runs: when, status, and each (signal, feature, metric) value."""
        import asyncio
        rows = await asyncio.to_thread(schedules.list)
        out = []
        for row in rows:
            runs = await asyncio.to_thread(schedules.runs, row.name, RUNS_SHOWN)
            out.append({"name": row.name, "enabled": row.enabled, "next_run_at": row.next_run_at,
                        "runs": [{"id": r["id"], "started_at": r["started_at"], "status": r["status"],
                                  "results": r["results"]} for r in runs]})
        return {"schedules": out}
