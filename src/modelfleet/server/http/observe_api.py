"""Routes to watch the fleet: `GET /metrics` (Prometheus), the JSON the dashboard and `fleet top`
read (`/api/stats`, `/api/models`, `/api/events`, `/api/requests`), and the dashboard itself,
static files shipped in the package under server/static/dashboard/."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from ...domain.errors import NotFound
from ..control.controller import Controller
from ..telemetry.hooks import Telemetry

STATIC = Path(__file__).parents[1] / "static"   # server/static, shipped as package data


def add_routes(app: FastAPI, controller: Controller, registry, telemetry: Telemetry) -> None:
    """Authorized by the app's own dependency (auth.py); /metrics is open where the settings say."""
    stats = telemetry.stats

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        body, content_type = telemetry.metrics.exposition()
        return Response(body, media_type=content_type)

    @app.get("/api/stats")
    async def get_stats(endpoint: str | None = None, series: int = 0, top: int = 8) -> dict:
        """Live figures over the last minute per endpoint and deployment (req/s, p50, p99,
        errors, in flight, queued, and replicas: ready, wanted, busy, starting, draining,
        failed); with `series=N`, per-second points of the last N seconds for the `top`
        busiest endpoints (or the one asked for)."""
        now = time.time()
        table = controller.router.table
        if endpoint is not None and endpoint not in table.endpoints:
            raise NotFound(f"endpoint {endpoint!r} not found")
        endpoints = []
        for ep in table.endpoints.values():
            if endpoint is not None and ep.name != endpoint:
                continue
            keys = [(ep.name, "")] + [(ep.name, d) for d in ep.deployments]
            deployments = []
            for d in ep.deployments.values():
                deployments.append({
                    "name": d.name, "live": stats.summary([(ep.name, d.name)], now),
                    "inflight": d.admission.inflight, "queued": len(d.admission.waiters),
                    "replicas": controller.queries.replica_counts(ep.name, d.name).to_dict(),
                    "updating": controller.queries.is_busy(ep.name, d.name)})
            endpoints.append({"name": ep.name, "live": stats.summary(keys, now),
                              "inflight": sum(d["inflight"] for d in deployments),
                              "queued": sum(d["queued"] for d in deployments), "deployments": deployments})
        out = {"time": now, "endpoints": endpoints,
               "rollouts": [{"endpoint": e["name"], "deployment": d["name"], "replicas": d["replicas"]}
                            for e in endpoints for d in e["deployments"] if d["updating"]]}
        if series > 0:
            busiest = sorted(endpoints, key=lambda e: -e["live"]["requests"])[:max(1, top)]
            out["series"] = {}
            for e in busiest:
                keys = [(e["name"], "")] + [(e["name"], d["name"]) for d in e["deployments"]]
                out["series"][e["name"]] = stats.series(keys, now, series)
                for d in e["deployments"]:
                    out["series"][f"{e['name']}/{d['name']}"] = stats.series([(e["name"], d["name"])], now, series)
        return out

    @app.get("/api/models")
    async def list_models() -> list[dict]:
        found = await asyncio.to_thread(registry.list)
        return [{k: v for k, v in m.to_dict().items() if k != "files"} for m in found]

    @app.get("/api/events")
    async def events(n: int = 100) -> list[dict]:
        """The newest server events (replica state changes, warnings), oldest first."""
        return list(telemetry.events)[-max(1, min(n, 1000)):]

    @app.get("/api/requests")
    async def requests(n: int = 50) -> list[dict]:
        """The newest access-log entries, oldest first."""
        return telemetry.access_log.recent_entries(max(1, min(n, 1000)))

    @app.get("/dashboard", include_in_schema=False)
    async def dashboard_root(request: Request) -> RedirectResponse:
        return RedirectResponse(request.scope.get("root_path", "") + "/dashboard/")

    app.mount("/dashboard", DashboardFiles(directory=STATIC / "dashboard", html=True), name="dashboard")


class DashboardFiles(StaticFiles):
    """The dashboard's files at /dashboard/FILE. Under a workspace's prefix the server hands the path
    over without it (server/app.py), which StaticFiles, looking for the prefix, would not find."""

    def get_path(self, scope) -> str:
        return os.path.normpath(os.path.join(*scope["path"].removeprefix("/dashboard").split("/")))


def live_figures(telemetry: Telemetry, endpoint: str, deployments: list[str], deployment: str | None = None) -> dict:
    """The last minute of one endpoint (all its deployments) or one deployment, for `show`."""
    keys = [(endpoint, deployment)] if deployment else [(endpoint, "")] + [(endpoint, d) for d in deployments]
    return telemetry.stats.summary(keys, time.time())
