"""Data assets in the control API (`fleet data`): versions registered from files the client
uploaded first (`PUT /api/artifacts/data/SHA`, as models are), or collected data named by its
datastore path; reading one as columns.

    GET  /api/data[?name=]
    POST /api/data/{name}/versions                    {version, type, path, sha256, files, ...}
    GET  /api/data/{name}                             the latest version
    GET  /api/data/{name}/versions/{version}
    GET  /api/data/{name}/versions/{version}/columns  its rows as {column: values}
"""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from pydantic import BaseModel, Field

from ...domain.errors import InvalidInput
from ...monitoring.data_assets import DataAssets
from ...schema.monitoring import DataAssetSpec
from ...schema.validation import validate
from .models_api import SHA256_PATTERN, FileEntry


class DataBody(BaseModel):
    version: str | None = None
    type: str = "uri_folder"
    path: str = Field(description="the path as the user gave it (a local file or folder, or a datastore URI)")
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    # None: collected data, kept by reference (path is its datastore URI)
    sha256: str | None = Field(default=None, pattern=SHA256_PATTERN)
    files: list[FileEntry] = Field(default_factory=list)


def add_routes(api: FastAPI, assets: DataAssets, deps: list) -> None:
    @api.get("/api/data", dependencies=deps)
    async def list_data(name: str | None = None) -> list[dict]:
        return [a.to_dict() for a in await asyncio.to_thread(assets.list, name)]

    @api.post("/api/data/{name}/versions", dependencies=deps)
    async def create_data(name: str, body: DataBody) -> dict:
        fields = body.model_dump(include={"version", "type", "path", "description", "tags"}, exclude_none=True)
        spec = validate(DataAssetSpec, {**fields, "name": name}, f"data asset {name}")
        if body.sha256 is None:
            if body.files:
                raise InvalidInput("files: only uploaded data (with its sha256) lists files")
            return (await asyncio.to_thread(assets.add_collected, spec)).to_dict()
        files = [f.model_dump() for f in body.files]
        return (await asyncio.to_thread(assets.register_snapshot, spec, body.sha256, files)).to_dict()

    @api.get("/api/data/{name}", dependencies=deps)
    async def latest_data(name: str) -> dict:
        return (await asyncio.to_thread(assets.store.get, name)).to_dict()

    @api.get("/api/data/{name}/versions/{version}", dependencies=deps)
    async def get_data(name: str, version: str) -> dict:
        return (await asyncio.to_thread(assets.store.get, name, version)).to_dict()

    @api.get("/api/data/{name}/versions/{version}/columns", dependencies=deps)
    async def read_data(name: str, version: str) -> dict:
        def read() -> dict:
            return assets.read(assets.store.get(name, version))
        return await asyncio.to_thread(read)
