"""The workspaces a server hosts, over the API (`fleet workspace create|list|show|delete` against a
server; hosting.py does the work):

    GET    /api/workspaces           those the caller holds a role on (a role at / sees them all)
    PUT    /api/workspaces/{name}    create: workspaces/write at /; body {"default_datastore": DOCUMENT} optional
    GET    /api/workspaces/{name}    404 to a caller without a role on it, as for a name nobody made
    DELETE /api/workspaces/{name}    workspaces/delete at the workspace; never the primary

Every server-scope route, so each workspace's app has them and they mean the same under any prefix.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Callable

from fastapi import Depends, FastAPI
from pydantic import BaseModel

from ...domain.errors import NotFound
from ...domain.roles import action
from .auth import Authorizer, Caller, workspace_scope
from .datastores_api import checked_document

if TYPE_CHECKING:
    from ..hosting import HostedWorkspaces


class WorkspaceBody(BaseModel):
    default_datastore: Any = None   # a datastore document: model and code uploads go there from the start


def add_routes(app: FastAPI, hosting: Callable[[], HostedWorkspaces]) -> None:
    authorizer: Authorizer = app.state.admin
    signed_in = Depends(authorizer)

    async def visible(caller: Caller, name: str) -> bool:
        roles = await asyncio.to_thread(authorizer.identities.roles_at, caller.name, workspace_scope(name))
        return bool(roles) and hosting().app(name) is not None

    async def shown(caller: Caller, name: str) -> dict:
        if not await visible(caller, name):
            raise NotFound(f"workspace {name!r} not found")
        return await asyncio.to_thread(hosting().view, name)

    @app.get("/api/workspaces")
    async def list_workspaces(caller: Caller = signed_in) -> list[dict]:
        return [await asyncio.to_thread(hosting().view, n) for n in hosting().names() if await visible(caller, n)]

    @app.put("/api/workspaces/{name}")
    async def create_workspace(name: str, body: WorkspaceBody | None = None, caller: Caller = signed_in) -> dict:
        given = body.default_datastore if body is not None else None
        store = checked_document(given) if given is not None else None   # refused before anything is made
        return await hosting().create(name, caller.name, store)

    @app.get("/api/workspaces/{name}")
    async def show_workspace(name: str, caller: Caller = signed_in) -> dict:
        return await shown(caller, name)

    @app.delete("/api/workspaces/{name}")
    async def delete_workspace(name: str, caller: Caller = signed_in) -> dict:
        await shown(caller, name)
        await authorizer.require(caller, action("", "delete"), workspace_scope(name))
        return await hosting().delete(name)
