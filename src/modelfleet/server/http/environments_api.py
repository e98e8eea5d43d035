"""Environments in the server: the registry (`GET|POST /api/environments`, `GET
/api/environments/{ref}`, `PUT /api/environments/{name}/versions/{version}/archived`, inline and
MLflow-logged versions), builds (`POST /api/environments/build`, progress streamed), `POST
/api/environments/gc`, and the environment of a deployment being written.

A client reads an environment's files itself (`envfiles.content_of`) and sends what they ask for;
the server recomputes the content's sha256, so equal content is one version whoever sent it.

Builds run in worker threads (uv subprocesses), never on the event loop the gateway shares. A
build streams newline-delimited JSON: `{"progress": "<a line of uv's output>"}` as it goes, then
one `{"done": {...}}` or `{"error": {"code", "message", "detail"}}`.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Literal

import orjson
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from ...assets.environments import Environment
from ...schema.environment_files import EnvironmentContent
from ...domain.errors import FleetError, InvalidInput
from ...schema.documents import EnvironmentSpec
from ...schema.wire import DeploymentBody
from ..control.controller import Controller
from ..control.stores import Stores

log = logging.getLogger("modelfleet.environments")


class BuildBody(BaseModel):
    environment: str
    compute: str = "local"   # where its replicas will run: only local compute builds here


class CollectBody(BaseModel):
    cache: bool = False


class ContentBody(BaseModel):
    """What an environment asks for, as `environment_files.content_of` read it from its files."""
    requirements: list[str] = Field(default_factory=list)
    options: list[str] = Field(default_factory=list)
    python: str | None = None
    from_conda: list[str] = Field(default_factory=list)


class EnvironmentBody(BaseModel):
    """A version to register: its spec's fields and the content its files asked for."""
    name: str | None = None
    version: str | None = None
    image: str | None = None
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    content: ContentBody
    source: dict
    exist_ok: bool = False
    inline: bool = False   # a deployment's inline block: the anonymous version, or a reused one

    def spec(self) -> EnvironmentSpec:
        return EnvironmentSpec.model_construct(name=self.name, version=self.version, image=self.image,
                                               description=self.description, tags=self.tags)

    def parsed(self) -> EnvironmentContent:
        return EnvironmentContent.from_dict(self.content.model_dump())


class ModelEnvironmentBody(BaseModel):
    model: str
    # None: the environment the model logged only when the server lacks its flavour's package
    env_manager: Literal["virtualenv", "uv", "conda"] | None = None


class ImageBody(BaseModel):
    image: str


class Archived(BaseModel):
    archived: bool


async def deployment_environment(stores: Stores, body: DeploymentBody, model, endpoint: dict) -> str | None:
    """The `name:version` of the environment a deployment body names (or that its MLflow model
    logged, with env_manager), resolved and built before the deployment's row is written: a
    failed build changes nothing."""
    envs = stores.environments
    if body.env_manager is not None:
        if model.type != "mlflow":
            raise InvalidInput(f"env_manager {body.env_manager}: model {model.ref} is of type {model.type}, not "
                               "mlflow; name an environment instead")
        model_dir = await asyncio.to_thread(stores.registry.path_of, model, False)
        env = await asyncio.to_thread(envs.for_mlflow_model, model.ref, model_dir, body.env_manager)
    elif body.environment is not None:
        env = await asyncio.to_thread(envs.get, body.environment)
    elif model.type == "mlflow":   # no-code MLflow: its own environment when the server lacks its flavour
        model_dir = await asyncio.to_thread(stores.registry.path_of, model, False)
        env = await asyncio.to_thread(envs.for_mlflow_flavour, model.ref, model_dir)
        if env is None:
            return None
    else:
        return None
    local = (endpoint["spec"].get("compute") or "local") == "local"
    await asyncio.to_thread(envs.prepare, env, build=local)
    return env.ref


def add_routes(app: FastAPI, controller: Controller, stores: Stores, deps: list) -> None:
    envs = stores.environments

    @app.get("/api/environments", dependencies=deps)
    async def list_environments(name: str | None = None, include_archived: bool = False) -> list[dict]:
        found = await asyncio.to_thread(envs.list, name, include_archived)
        return [(await asyncio.to_thread(envs.describe, e)).to_dict() for e in found]

    @app.post("/api/environments", dependencies=deps)
    async def create(body: EnvironmentBody) -> dict:
        if not body.inline and not body.name:
            raise InvalidInput("name: an environment needs a name")
        if body.inline:
            env = await asyncio.to_thread(envs.add_inline, body.spec(), body.parsed(), body.source)
        else:
            env = await asyncio.to_thread(envs.add, body.spec(), body.parsed(), body.source, exist_ok=body.exist_ok)
        return (await asyncio.to_thread(envs.describe, env)).to_dict()

    @app.post("/api/environments/of-model", dependencies=deps)
    async def of_model(body: ModelEnvironmentBody) -> dict | None:
        """The environment an MLflow model logged for itself (`--env-manager`), registered; with
        no env_manager, that environment when the server lacks the model's flavour (else null)."""
        model = await asyncio.to_thread(stores.registry.get, body.model)
        if model.type != "mlflow":
            raise InvalidInput(f"env_manager {body.env_manager}: model {model.ref} is of type {model.type}, not "
                               "mlflow; name an environment instead")
        model_dir = await asyncio.to_thread(stores.registry.path_of, model, False)
        if body.env_manager is None:
            env = await asyncio.to_thread(envs.for_mlflow_flavour, model.ref, model_dir)
            if env is None:
                return None
        else:
            env = await asyncio.to_thread(envs.for_mlflow_model, model.ref, model_dir, body.env_manager)
        return (await asyncio.to_thread(envs.describe, env)).to_dict()

    @app.post("/api/environments/image", dependencies=deps)
    async def image(body: ImageBody) -> dict:
        """Why a deployment whose environment is only an image that is not Azure's runs on the
        default environment; refused under the strict python_policy."""
        spec = EnvironmentSpec.model_construct(image=body.image, conda_file=None, requirements=None)
        return {"runs_on_default": envs.runs_on_default(spec)}

    @app.get("/api/environments/{ref:path}", dependencies=deps)   # a curated ref is an azureml:// URI
    async def get(ref: str) -> dict:
        """`NAME:VERSION`, `NAME@latest` (an `azureml:` prefix is fine)."""
        env = await asyncio.to_thread(envs.get, ref)
        return (await asyncio.to_thread(envs.describe, env)).to_dict()

    @app.put("/api/environments/{name}/versions/{version}/archived", dependencies=deps)
    async def archive(name: str, version: str, body: Archived) -> dict:
        env = await asyncio.to_thread(envs.set_archived, name, version, body.archived)
        return (await asyncio.to_thread(envs.describe, env)).to_dict()

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
        for removed in report["removed"]:   # their warm parents go too
            controller.backend.release(Path(removed["path"]) / "bin" / "python")
        return report
