"""Environment builds in the server: `POST /api/environments/build` (progress streamed),
`POST /api/environments/gc`, and the environment of a deployment being written.

Builds run in worker threads (uv subprocesses), never on the event loop the gateway shares. A
build streams newline-delimited JSON: `{"progress": "<a line of uv's output>"}` as it goes, then
one `{"done": {...}}` or `{"error": {"code", "message", "detail"}}`.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import orjson
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from ..environments import Environment
from ..errors import FleetError, InvalidInput
from ..specs import DeploymentBody
from .controller import Controller

log = logging.getLogger("modelfleet.environments")


class BuildBody(BaseModel):
    environment: str
    compute: str = "local"   # where its replicas will run: only local compute builds here


class CollectBody(BaseModel):
    cache: bool = False


async def deployment_environment(controller: Controller, body: DeploymentBody, model, endpoint: dict) -> str | None:
    """The `name:version` of the environment a deployment body names (or that its MLflow model
    logged, with env_manager), resolved and built before the deployment's row is written: a
    failed build changes nothing."""
    envs = controller.environments
    if body.env_manager is not None:
        if model.type != "mlflow":
            raise InvalidInput(f"env_manager {body.env_manager}: model {model.ref} is of type {model.type}, not "
                               "mlflow; name an environment instead")
        model_dir = await asyncio.to_thread(controller.registry.path_of, model, False)
        env = await asyncio.to_thread(envs.for_mlflow_model, model.ref, model_dir, body.env_manager)
    elif body.environment is not None:
        env = await asyncio.to_thread(envs.get, body.environment)
    elif model.type == "mlflow":   # no-code MLflow: its own environment when the server lacks its flavour
        model_dir = await asyncio.to_thread(controller.registry.path_of, model, False)
        env = await asyncio.to_thread(envs.for_mlflow_flavour, model.ref, model_dir)
        if env is None:
            return None
    else:
        return None
    local = (endpoint["spec"].get("compute") or "local") == "local"
    await asyncio.to_thread(envs.prepare, env, build=local)
    return env.ref


def add_routes(app: FastAPI, controller: Controller, deps: list) -> None:
    envs = controller.environments

    @app.post("/api/environments/build", dependencies=deps)
    async def build(body: BuildBody) -> StreamingResponse:
        """Resolve and build an environment, or find it built: its progress, then its result."""
        env: Environment = await asyncio.to_thread(envs.get, body.environment)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict] = asyncio.Queue()

        def progress(line: str) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, {"progress": line})

        async def run() -> None:
            try:
                prepared = await asyncio.to_thread(envs.prepare, env, build=body.compute == "local",
                                                   progress=progress)
                queue.put_nowait({"done": prepared.to_dict()})
            except FleetError as e:
                queue.put_nowait({"error": e.to_dict()})
            except Exception as e:  # a bug: one line to the client, the traceback to the server log
                log.exception("building %s failed", env.ref)
                queue.put_nowait({"error": {"code": "error", "message": f"building {env.ref} failed: "
                                                                       f"{type(e).__name__}: {e}"}})

        task = asyncio.ensure_future(run())  # runs on when the client leaves: the build is kept

        async def lines():
            while True:
                item = await queue.get()
                yield orjson.dumps(item) + b"\n"
                if "progress" not in item:
                    break
            await task

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    @app.post("/api/environments/gc", dependencies=deps)
    async def collect(body: CollectBody) -> dict:
        """Remove the builds no deployment and no named environment version uses; what it freed."""
        report = await asyncio.to_thread(envs.collect, cache=body.cache)
        release = getattr(controller.backend, "release", None)
        for removed in report["removed"]:
            if release is not None:  # their warm parents go too
                release(Path(removed["path"]) / "bin" / "python")
        return report
