"""The control-plane HTTP API: writes desired state to the store and pokes the controller.

It never runs models. Every route is authorized by bearer token and the caller's roles against the
Azure action the route declares (auth.py, permissions.py); every change is appended to the
activity log (activity_api.py). Errors are the one error hierarchy as JSON (`{"error": {"code",
"message", "detail"}}`), never a traceback.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import socket
import uuid
from typing import Callable

from fastapi import Depends, FastAPI, Header, Request
from fastapi_offline import FastAPIOffline
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from ...files import logfmt
from ...domain import traffic as traffic_rules
from ...version import __version__
from ...domain.errors import AlreadyExists, Conflict, FleetError, InvalidInput, NotFound, RateLimited
from ...domain.placement import resolve_placement
from ...schema.validation import format_loc
from ...schema.wire import DeploymentBody
from ...domain.names import check_endpoint_name
from ...store.serving import new_key
from ...assets import computes as compute_targets
from . import openapi, logs as replica_logs, views
from ...schema import server_settings as settings
from .activity_api import REQUEST_ID, ActivityRecorder, add_routes as add_activity
from .auth import Authorizer
from .computes_api import add_routes as add_computes
from .failed_attempts import FailedAttempts
from .identities_api import add_routes as add_identities
from .datastores_api import add_routes as add_datastores
from .environments_api import add_routes as add_environments, deployment_environment
from .models_api import add_routes as add_models
from .observe_api import add_routes as add_observability, live_figures
from ..telemetry.hooks import Telemetry
from ..control.controller import Controller
from ..control.stores import Stores

log = logging.getLogger("modelfleet.api")

FOLLOW_POLL_S = 0.25


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or a name) means this machine only; unknown names are not."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        return all(ipaddress.ip_address(info[4][0]).is_loopback
                   for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP))
    except (OSError, ValueError):
        return False


class EndpointBody(BaseModel):
    auth_mode: str = "key"
    local: bool = False   # made with --local: loopback clients need no key, as Azure's local endpoints
    compute: str = "local"
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)


class TrafficBody(BaseModel):
    traffic: dict[str, int] | None = None
    mirror_traffic: dict[str, int] | None = None


class KeyBody(BaseModel):
    key_type: str = "primary"


class OffLoop:
    """The store's blocking calls, run in a worker thread: a slow disk or a SQLite lock held by
    another process must never stall the gateway, which shares this event loop."""

    def __init__(self, target):
        self._target = target

    def __getattr__(self, name: str):
        fn = getattr(self._target, name)

        async def call(*args, **kwargs):
            return await asyncio.to_thread(fn, *args, **kwargs)
        return call


def build_api(controller: Controller, stores: Stores, token: str, public_url: str, host: str = "127.0.0.1",
              force_open: bool = False, telemetry: Telemetry | None = None, metrics_auth: str = "auto",
              draining: Callable[[], bool] = lambda: False,
              failed_token_attempts_per_minute: int = settings.ServerSettings().failed_token_attempts_per_minute,
              attempts: FailedAttempts | None = None, hosted: bool = False) -> FastAPI:
    """The API app; `token` is the launcher's (run/server.json): the first admin's. Workspaces
    hosted on one server share one count of failed `attempts`; `public_url` names the workspace's
    prefix (/workspaces/NAME) for all but the primary; a `hosted` one has no server settings."""
    serving, registry = stores.serving, stores.registry
    store = OffLoop(serving)
    computes = stores.computes
    telemetry = telemetry or Telemetry()
    loopback = is_loopback(host)
    metrics_open = metrics_auth == "none" or (metrics_auth == "auto" and loopback)
    authorizer = Authorizer(stores.identities, controller.ws.name, token,
                            attempts or FailedAttempts(failed_token_attempts_per_minute),
                            frozenset({"/metrics"}) if metrics_open else frozenset())
    app = FastAPIOffline(title="modelfleet", version=__version__, description=openapi.DESCRIPTION,
                         swagger_ui_parameters={"persistAuthorization": True}, redoc_url=None,
                         dependencies=[Depends(authorizer)])   # every route: deny by default
    app.add_middleware(ActivityRecorder, activity=stores.activity)

    @app.exception_handler(FleetError)
    async def _fleet_error(_req, exc: FleetError):
        headers = {"retry-after": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
        return JSONResponse({"error": exc.to_dict()}, status_code=exc.http_status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_req, exc: RequestValidationError):
        err = exc.errors()[0]
        loc = format_loc(tuple(x for x in err["loc"] if x != "body"))
        msg = err["msg"].removeprefix("Value error, ")   # a whole-body rule has no field to name
        return JSONResponse({"error": {"code": "invalid_input", "message": f"{loc}: {msg}" if loc else msg}},
                            status_code=400)

    @app.exception_handler(Exception)
    async def _unexpected(req: Request, exc: Exception):
        rid = req.scope.get(REQUEST_ID) or uuid.uuid4().hex[:12]
        log.exception("control API error (request %s)", rid)
        return JSONResponse({"error": {"code": "internal_error", "message": f"internal error (request {rid})"}},
                            status_code=500)

    async def endpoint_view(ep: dict, deployments: list[str] | None = None) -> dict:
        if deployments is None:
            deployments = [d["name"] for d in await store.deployments(ep["name"])]
        return views.endpoint_view(ep, deployments, public_url)

    def deployment_view(row: dict) -> dict:
        return views.deployment_view(row, controller.queries.replicas_of(row["endpoint"], row["name"]),
                                     controller.queries.is_busy(row["endpoint"], row["name"]),
                                     controller.queries.health_of(row["endpoint"], row["name"],
                                                          row["spec"].get("instance_count", 1)))

    deps = [Depends(authorizer)]   # the app's own dependency already; said again, it runs once
    app.state.admin = authorizer   # for routes added by other modules (server/monitoring_api.py)

    @app.get("/api/health", dependencies=deps)
    async def health() -> dict:
        return {"status": "ok", "version": __version__, "workspace": controller.ws.name}

    # -- endpoints -------------------------------------------------------------------------

    @app.get("/api/endpoints", dependencies=deps)
    async def list_endpoints() -> list[dict]:
        names: dict[str, list[str]] = {}
        for d in await store.deployments():
            names.setdefault(d["endpoint"], []).append(d["name"])
        return [await endpoint_view(e, names.get(e["name"], [])) for e in await store.endpoints()]

    @app.get("/api/endpoints/{name}", dependencies=deps)
    async def get_endpoint(name: str) -> dict:
        ep = await store.endpoint(name)
        rows = await store.deployments(name)
        view = await endpoint_view(ep, [d["name"] for d in rows])
        runs = {d["name"]: views.where_it_runs(d["spec"], controller.queries.replicas_of(name, d["name"])) for d in rows}
        for k in ("placement", "loaded", "last_load_ms"):   # per deployment: where its model runs
            view[k] = {d: r[k] for d, r in runs.items()}
        view["live"] = live_figures(telemetry, name, view["deployments"])
        return view

    @app.put("/api/endpoints/{name}", dependencies=deps)
    async def put_endpoint(name: str, body: EndpointBody, create: bool | None = None) -> dict:
        check_endpoint_name(name)
        await asyncio.to_thread(compute_targets.resolve, computes, body.compute)
        if body.auth_mode not in ("key", "none"):
            raise InvalidInput(f"auth_mode {body.auth_mode!r}: use key or none")
        if body.auth_mode == "none" and not loopback and not force_open:
            raise Conflict(f"refusing auth_mode none: the server listens on {host}, not loopback "
                           "(start it with --allow-open-endpoints to force)")
        spec = body.model_dump()
        try:
            existing = await store.endpoint(name)
        except NotFound:
            existing = None
        if existing is None:
            if create is False:
                raise NotFound(f"endpoint {name!r} not found")
            ep = await store.create_endpoint(name, spec)
        else:
            if create is True:
                raise AlreadyExists(f"endpoint {name!r} already exists")
            was = existing["spec"].get("compute", "local")
            if was != body.compute and await store.deployments(name):
                raise Conflict(f"endpoint {name!r} has deployments on compute {was!r}: delete them before "
                               f"moving it to {body.compute!r}")
            ep = await store.update_endpoint(name, spec=spec) if existing["spec"] != spec else existing
        controller.poke()
        return await endpoint_view(ep)

    @app.put("/api/endpoints/{name}/traffic", dependencies=deps)
    async def put_traffic(name: str, body: TrafficBody) -> dict:
        ep = await store.endpoint(name)
        traffic = ep["traffic"] if body.traffic is None else body.traffic
        mirror = ep["mirror_traffic"] if body.mirror_traffic is None else body.mirror_traffic
        names = {d["name"] for d in await store.deployments(name)}
        traffic_rules.check(traffic, mirror, names)
        ep = await store.update_endpoint(name, traffic=traffic_rules.clean(traffic),
                                     mirror_traffic=traffic_rules.clean(mirror))
        await controller.reconcile()   # publish the new table before answering
        return await endpoint_view(ep)

    @app.delete("/api/endpoints/{name}", dependencies=deps)
    async def delete_endpoint(name: str) -> dict:
        await store.delete_endpoint(name)
        controller.poke()
        return {"deleted": name}

    @app.get("/api/endpoints/{name}/keys", dependencies=deps)
    async def get_keys(name: str) -> dict:
        ep = await store.endpoint(name)
        return {"primaryKey": ep["primary_key"], "secondaryKey": ep["secondary_key"]}

    @app.post("/api/endpoints/{name}/regenerate-keys", dependencies=deps)
    async def regenerate(name: str, body: KeyBody) -> dict:
        if body.key_type not in ("primary", "secondary"):
            raise InvalidInput(f"key_type {body.key_type!r}: use primary or secondary")
        await store.update_endpoint(name, **{f"{body.key_type}_key": new_key()})
        await controller.reconcile()
        ep = await store.endpoint(name)
        return {"primaryKey": ep["primary_key"], "secondaryKey": ep["secondary_key"]}

    # -- deployments -----------------------------------------------------------------------

    @app.get("/api/endpoints/{endpoint}/deployments", dependencies=deps)
    async def list_deployments(endpoint: str) -> list[dict]:
        await store.endpoint(endpoint)
        return [deployment_view(d) for d in await store.deployments(endpoint)]

    @app.get("/api/deployments", dependencies=deps)
    async def all_deployments() -> list[dict]:
        return [deployment_view(d) for d in await store.deployments()]

    @app.get("/api/endpoints/{endpoint}/deployments/{name}", dependencies=deps)
    async def get_deployment(endpoint: str, name: str, wait: float = 0) -> dict:
        wait = min(max(wait, 0.0), 600.0) if math.isfinite(wait) else 0.0  # nan would wait forever
        deadline = asyncio.get_running_loop().time() + wait
        while True:
            row = await store.deployment(endpoint, name)
            settled = row["state"] in ("Succeeded", "Failed") and not controller.queries.is_busy(endpoint, name)
            if settled or asyncio.get_running_loop().time() >= deadline:
                view = deployment_view(row)
                view["live"] = live_figures(telemetry, endpoint, [], name)
                return view
            await asyncio.sleep(0.02)

    @app.put("/api/endpoints/{endpoint}/deployments/{name}", dependencies=deps)
    async def put_deployment(endpoint: str, name: str, body: DeploymentBody, create: bool | None = None,
                             all_traffic: bool = False,
                             if_match: str | None = Header(default=None, alias="if-match")) -> dict:
        """`If-Match: "<etag>"` (from the deployment's view): refused with 412 if it changed since."""
        try:
            check_endpoint_name(name)
        except InvalidInput as e:
            raise InvalidInput(e.message.replace("endpoint name", "deployment name")) from None
        ep = await store.endpoint(endpoint)
        model = await asyncio.to_thread(registry.get, body.model)
        spec = body.model_dump()
        spec.update(model=model.ref, model_type=model.type, model_sha256=model.sha256)
        if body.code is None and model.type == "custom":
            raise InvalidInput(f"model {model.ref} is of type custom: give --code and --scoring-script")
        resolve_placement(body.placement, model.type, code=body.code is not None,
                          environment_variables=body.environment_variables,
                          environment=body.environment is not None or body.env_manager is not None)
        if body.code is not None:
            script = (stores.artifacts.snapshot_dir("code", body.code.sha256) / body.code.root
                      / body.code.scoring_script)
            if not script.is_file():
                raise InvalidInput(f"scoring_script {body.code.scoring_script!r} not found in the code directory")
            await asyncio.to_thread(stores.datastores.commit, "code", body.code.sha256)   # before the row
        spec["environment"] = await deployment_environment(stores, body, model, ep)  # built, or nothing changes
        row, _ = await store.put_deployment(endpoint, name, spec, create=create, take_all_traffic=all_traffic,
                                            if_match=if_match.strip().removeprefix("W/").strip('"') if if_match else None)
        controller.poke()
        return deployment_view(row)

    @app.delete("/api/endpoints/{endpoint}/deployments/{name}", dependencies=deps)
    async def delete_deployment(endpoint: str, name: str) -> dict:
        await store.delete_deployment(endpoint, name)
        await controller.reconcile()
        return {"deleted": f"{endpoint}/{name}"}

    @app.get("/api/endpoints/{endpoint}/deployments/{name}/logs", dependencies=deps)
    async def logs(endpoint: str, name: str, lines: int = 100, since: str | None = None, follow: bool = False):
        """The replicas' logs merged by time, each line prefixed with its replica; `since` a
        duration (10m) or a time; `follow` streams new lines (text/plain) until the client leaves."""
        await store.deployment(endpoint, name)
        if (await store.endpoint(endpoint))["spec"].get("compute", "local") != "local":
            if since or follow:  # the replicas' own logs are on the cluster's nodes
                raise InvalidInput("--since and --follow are available for deployments on local compute")
            return {"logs": await controller.queries.logs(endpoint, name, min(max(1, lines), 100_000))}
        folder = controller.ws.logs_dir / endpoint / name
        current = {r["id"] for r in controller.queries.replicas_of(endpoint, name)}
        start = logfmt.since(since) if since else None
        if not follow:
            return {"logs": await asyncio.to_thread(replica_logs.read, folder, lines, current, start)}

        async def stream():
            new_lines = replica_logs.follow(folder, current)
            await asyncio.to_thread(next, new_lines)  # from the files' ends as they are now
            text = await asyncio.to_thread(replica_logs.read, folder, lines, current, start)
            if text:
                yield text + "\n"
            while not draining():
                await asyncio.sleep(FOLLOW_POLL_S)
                fresh = await asyncio.to_thread(next, new_lines)
                if fresh:
                    yield "\n".join(fresh) + "\n"
        return StreamingResponse(stream(), media_type="text/plain; charset=utf-8")

    add_environments(app, controller, stores, deps)
    add_models(app, registry, stores.artifacts, deps)
    add_computes(app, computes, controller.ws.logs_dir, deps)
    add_datastores(app, stores.datastores, deps)

    def server_settings_here() -> None:
        if hosted:   # the server's, shared by every workspace it hosts: not a hosted workspace's to change
            raise Conflict(f"workspace {controller.ws.name!r} uses its server's settings: show or change them "
                           "on the server's primary workspace")

    @app.get("/api/server/settings", dependencies=deps)
    async def get_settings() -> dict:
        server_settings_here()
        return (await asyncio.to_thread(settings.load, controller.ws)).shown()   # a password hidden

    @app.patch("/api/server/settings", dependencies=deps)
    async def change_settings(changes: dict) -> dict:
        """Saved for the next start, as `fleet server configure` saves them."""
        server_settings_here()
        if any(v is not None and not isinstance(v, (str, int, float, bool)) for v in changes.values()):
            raise InvalidInput("server settings: each value is a string, a number or a boolean")
        return (await asyncio.to_thread(lambda: settings.update(controller.ws, **changes))).shown()

    add_identities(app, stores.identities, authorizer)
    add_activity(app, stores.activity)
    add_observability(app, controller, registry, telemetry)
    openapi.document(app, controller.router)
    return app


