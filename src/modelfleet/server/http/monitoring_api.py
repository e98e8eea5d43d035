"""Model monitoring in the server: the deployments' data collectors, the monitor scheduler, their
figures at /metrics, and the routes of `fleet schedule` (data assets: data_api.py).

    GET    /api/schedules
    PUT    /api/schedules/{name}             create or replace, from the monitor document
    GET    /api/schedules/{name}             the schedule and its latest run
    DELETE /api/schedules/{name}             the schedule and its runs
    PUT    /api/schedules/{name}/enabled     {"enabled": true|false}
    POST   /api/schedules/{name}/run         run the monitor now; the run with every result
    GET    /api/schedules/{name}/runs[?limit=]
    GET    /api/monitoring                   the dashboard's series: each feature's metric over time
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import Body, Depends, FastAPI
from pydantic import BaseModel

from ...collection.hub import CollectionHub
from ...collection.writer_client import WriterProcess
from ...monitoring.data_assets import DataAssets
from ...monitoring.prometheus import MonitoringCollector
from ...monitoring.scheduler import Monitoring
from ...monitoring.schedules import Schedules
from ...store.monitoring import ScheduleStore
from . import data_api

RUNS_SHOWN = 100


class Enabled(BaseModel):
    enabled: bool


def install(api: FastAPI, controller, db, artifacts, root: Path, registry=None, datastores=None) -> Monitoring:
    """Hook monitoring into a server: `controller` gets the collectors, `api` the routes, the
    Prometheus `registry` (when given) the figures. The scheduler's loop is the caller's to start.
    With the workspace's `datastores` (assets/datastores.py), collected files also go to the
    default datastore when it is a blob container, and are read back from it."""
    writer = None
    if datastores is not None:
        writer = WriterProcess(root, module="modelfleet.datastores.collected", datastore=datastores.default_document)
    hub = CollectionHub(root, writer)
    controller.collection = hub
    store = ScheduleStore(db)
    assets = DataAssets(db, artifacts, root, datastores)
    monitoring = Monitoring(store, assets)
    monitoring.runs_here = lambda: controller.leading   # one server runs due monitors: the leader
    if registry is not None:
        registry.register(MonitoringCollector(hub, monitoring))
    deps = [Depends(api.state.admin)]
    data_api.add_routes(api, assets, deps)
    add_routes(api, monitoring, Schedules(store, assets), deps)
    return monitoring


def add_routes(api: FastAPI, monitoring: Monitoring, schedules: Schedules, deps: list) -> None:
    @api.get("/api/schedules", dependencies=deps)
    async def list_schedules() -> list[dict]:
        return await asyncio.to_thread(schedules.list)

    @api.put("/api/schedules/{name}", dependencies=deps)
    async def put_schedule(name: str, document: dict = Body(...)) -> dict:
        """Create or replace a schedule (`az ml schedule create` on an existing name updates it)."""
        return await asyncio.to_thread(schedules.put, name, document)

    @api.get("/api/schedules/{name}", dependencies=deps)
    async def get_schedule(name: str) -> dict:
        return await asyncio.to_thread(schedules.get, name)

    @api.delete("/api/schedules/{name}", dependencies=deps)
    async def delete_schedule(name: str) -> dict:
        await asyncio.to_thread(schedules.delete, name)
        monitoring.latest.pop(name, None)   # its figures leave /metrics with it
        return {"name": name, "deleted": True}

    @api.put("/api/schedules/{name}/enabled", dependencies=deps)
    async def enable_schedule(name: str, body: Enabled) -> dict:
        return await asyncio.to_thread(schedules.set_enabled, name, body.enabled)

    @api.post("/api/schedules/{name}/run", dependencies=deps)
    async def run_schedule(name: str) -> dict:
        """Run a monitor now (what `fleet schedule run` does); the run with every result."""
        return await monitoring.run_async(name)

    @api.get("/api/schedules/{name}/runs", dependencies=deps)
    async def schedule_runs(name: str, limit: int = RUNS_SHOWN) -> list[dict]:
        return await asyncio.to_thread(schedules.runs, name, limit)

    @api.get("/api/monitoring", dependencies=deps)
    async def monitoring_series() -> dict:
        """Each schedule's recent runs: when, status, and each (signal, feature, metric) value."""
        out = []
        for row in await asyncio.to_thread(schedules.store.list):
            runs = await asyncio.to_thread(schedules.store.runs, row.name, RUNS_SHOWN)
            out.append({"name": row.name, "enabled": row.enabled, "next_run_at": row.next_run_at,
                        "runs": [{"id": r["id"], "started_at": r["started_at"], "status": r["status"],
                                  "results": r["results"]} for r in runs]})
        return {"schedules": out}
