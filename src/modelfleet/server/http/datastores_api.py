"""Datastores in the control API (`fleet datastore`): Azure's datastore documents, their secrets
stored encrypted and never shown, and which one is the workspace's default.

    GET    /api/datastores                        POST /api/datastores          (create)
    GET    /api/datastores/{name}                 PUT  /api/datastores/{name}   (update)
    DELETE /api/datastores/{name}                 PUT  /api/datastores/{name}/default
    POST   /api/datastores/{name}/listSecrets     the stored secret (Azure's listSecrets action)

The workspace's own folder is listed as `workspaceartifactstore` (type `local`), the default
while no other is.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from ...datastores import LOCAL_NAME, DatastoreDocument, parse_document
from ...domain.errors import InvalidInput


class DatastoreBody(BaseModel):
    document: Any            # checked by parse_document: its errors name the document's fields
    default: bool = False    # make it the workspace's default datastore


def checked_document(document: Any, name: str | None = None) -> DatastoreDocument:
    """A datastore document given over the API, its first problem one line naming the field."""
    doc = parse_document(document)
    if doc.name == LOCAL_NAME:
        raise InvalidInput(f"name: {LOCAL_NAME!r} is the workspace's own folder; choose another name")
    if name is not None and doc.name != name:
        raise InvalidInput(f"name: the document names {doc.name!r}, the request {name!r}")
    return doc


def add_routes(app: FastAPI, workspace_datastores, deps: list) -> None:
    """listSecrets has its own action (permissions.py): only Owners and Contributors read a
    credential. A datastore made the default is reached first (its container made if missing):
    a store that cannot take uploads is refused in one line, before anything changes."""
    datastores = workspace_datastores.store
    prepare = workspace_datastores.prepare

    def local(rows: list[dict]) -> dict:
        return {"name": LOCAL_NAME, "type": "local", "description": "the workspace's own folder",
                "is_default": not any(r["is_default"] for r in rows)}

    @app.get("/api/datastores", dependencies=deps)
    async def list_datastores() -> list[dict]:
        rows = await asyncio.to_thread(datastores.list)
        return [local(rows), *rows]

    @app.get("/api/datastores/{name}", dependencies=deps)
    async def show(name: str) -> dict:
        if name == LOCAL_NAME:
            return local(await asyncio.to_thread(datastores.list))
        return await asyncio.to_thread(datastores.show, name)

    @app.post("/api/datastores", dependencies=deps)
    async def create(body: DatastoreBody) -> dict:
        doc = checked_document(body.document)
        if body.default:
            await asyncio.to_thread(prepare, doc)
        return await asyncio.to_thread(datastores.create, doc, body.default)

    @app.put("/api/datastores/{name}", dependencies=deps)
    async def update(name: str, body: DatastoreBody) -> dict:
        doc = checked_document(body.document, name)
        if body.default or (await asyncio.to_thread(datastores.show, name))["is_default"]:
            await asyncio.to_thread(prepare, doc)
        return await asyncio.to_thread(datastores.update, doc, body.default)

    @app.delete("/api/datastores/{name}", dependencies=deps)
    async def delete(name: str) -> dict:
        await asyncio.to_thread(datastores.delete, name)
        return {"deleted": name}

    @app.put("/api/datastores/{name}/default", dependencies=deps)
    async def set_default(name: str) -> dict:
        if name != LOCAL_NAME:
            await asyncio.to_thread(prepare, await asyncio.to_thread(datastores.get, name))
        await asyncio.to_thread(datastores.set_default, None if name == LOCAL_NAME else name)
        return {"default": name}

    @app.post("/api/datastores/{name}/listSecrets", dependencies=deps)
    async def list_secrets(name: str) -> dict:
        doc = await asyncio.to_thread(datastores.get, name)
        kind = doc.credentials.kind
        if kind == "none":
            return {"secrets_type": "none"}
        return {"secrets_type": kind, kind: await asyncio.to_thread(doc.credentials.secret)}
