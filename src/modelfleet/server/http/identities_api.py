"""Who may do what, over the control API: users and service principals, their tokens, role
assignments (`az role assignment`'s words), and who the caller is.

    GET  /api/identity                        the caller, and their role assignments
    GET|POST /api/principals                  list; create (its first token, shown once)
    GET|DELETE /api/principals/{name}
    GET|POST /api/tokens[?principal=]         the caller's own tokens, or (Owner) another's
    DELETE /api/tokens/{name}[?principal=]    revoked: the next request with it is refused
    GET|POST|DELETE /api/role-assignments     at the workspace (default) or at /
    GET  /api/role-definitions                the built-in roles and their actions

There is no sign-up: only a caller allowed `principals/write` at `/` (an Owner) makes principals.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import Depends, FastAPI, Query
from pydantic import BaseModel, Field

from ...domain.errors import InvalidInput
from ...domain.names import check_name
from ...domain.roles import BUILT_IN_ROLES, PRINCIPALS, ROLE_ASSIGNMENTS, role
from ...domain.tokens import lifetime
from ...store.identities import ROOT_SCOPE, IdentityStore
from .auth import Authorizer, Caller, workspace_scope


class PrincipalBody(BaseModel):
    name: str
    kind: Literal["user", "service_principal"] = "user"
    description: str = Field(default="", max_length=1000)
    token_name: str = "default"
    expires_in: str | None = None   # 30d; None: until revoked


class TokenBody(BaseModel):
    name: str
    expires_in: str | None = None
    principal: str | None = None    # None: the caller


class AssignmentBody(BaseModel):
    assignee: str
    role: str
    scope: str | None = None        # None: this workspace


def assignment_view(row: dict) -> dict:
    """As `az role assignment list` shows one."""
    return {"name": row["id"], "principalName": row["principal"], "roleDefinitionName": row["role"],
            "scope": row["scope"], "createdOn": row["created_at"], "createdBy": row["created_by"]}


def add_routes(app: FastAPI, identities: IdentityStore, authorizer: Authorizer) -> None:
    here = workspace_scope(authorizer.workspace)
    signed_in = Depends(authorizer)

    def scope_of(given: str | None) -> str:
        """`/`, this workspace by name, or `/workspaces/NAME` (or an Azure id ending so) of a
        workspace the server hosts; None: here."""
        if given is None or given.strip() in ("", here, authorizer.workspace):
            return here
        value = given.strip().rstrip("/")
        if value in ("", ROOT_SCOPE):
            return ROOT_SCOPE
        _, marker, name = value.rpartition("/workspaces/")
        hosted = getattr(app.state, "hosts", None)   # the server's hosted workspaces (server/app.py)
        if marker and name == authorizer.workspace:
            return here
        if marker and "/" not in name and hosted is not None and hosted(name):
            return workspace_scope(name)
        raise InvalidInput(f"--scope {given!r}: use / (the whole server) or /workspaces/NAME of a workspace the "
                           f"server hosts (here: /workspaces/{authorizer.workspace})")

    async def whose(caller: Caller, principal: str | None, verb: str) -> str:
        """Whose tokens: the caller's own, or another's when the caller may manage principals."""
        if principal is None or principal == caller.name:
            return caller.name
        await authorizer.require(caller, f"{PRINCIPALS}/{verb}", ROOT_SCOPE)
        return principal

    @app.get("/api/identity")
    async def identity(caller: Caller = signed_in) -> dict:
        """Who the token belongs to, the workspace here, and the caller's role assignments."""
        principal = await asyncio.to_thread(identities.principal, caller.name)
        rows = await asyncio.to_thread(identities.assignments, caller.name)
        return {**principal, "workspace": authorizer.workspace,
                "role_assignments": [assignment_view(r) for r in rows]}

    @app.get("/api/principals")
    async def list_principals(kind: Literal["user", "service_principal"] | None = None) -> list[dict]:
        return await asyncio.to_thread(identities.principals, kind)

    @app.post("/api/principals")
    async def create_principal(body: PrincipalBody, caller: Caller = signed_in) -> dict:
        check_name(body.name, "--name")
        check_name(body.token_name, "token name")
        expires = lifetime(body.expires_in) if body.expires_in else None
        principal, token = await asyncio.to_thread(
            identities.create_principal, body.name, body.kind, created_by=caller.name, description=body.description,
            token_name=body.token_name, expires_in=expires)
        return {**principal, "token": token, "token_name": body.token_name}

    @app.get("/api/principals/{name}")
    async def show_principal(name: str) -> dict:
        principal = await asyncio.to_thread(identities.principal, name)
        rows = await asyncio.to_thread(identities.assignments, name)
        tokens = await asyncio.to_thread(identities.tokens, name)
        return {**principal, "role_assignments": [assignment_view(r) for r in rows], "tokens": tokens}

    @app.delete("/api/principals/{name}")
    async def delete_principal(name: str) -> dict:
        await asyncio.to_thread(identities.delete_principal, name)
        return {"deleted": name}

    @app.get("/api/tokens")
    async def list_tokens(principal: str | None = None, caller: Caller = signed_in) -> list[dict]:
        owner = await whose(caller, principal, "read")
        await asyncio.to_thread(identities.principal, owner)   # an unknown one is 404, not an empty list
        return await asyncio.to_thread(identities.tokens, owner)

    @app.post("/api/tokens")
    async def create_token(body: TokenBody, caller: Caller = signed_in) -> dict:
        check_name(body.name, "--name")
        owner = await whose(caller, body.principal, "write")
        expires = lifetime(body.expires_in) if body.expires_in else None
        view, token = await asyncio.to_thread(identities.create_token, owner, body.name, expires)
        return {**view, "token": token}

    @app.delete("/api/tokens/{name}")
    async def revoke_token(name: str, principal: str | None = None, caller: Caller = signed_in) -> dict:
        owner = await whose(caller, principal, "write")
        await asyncio.to_thread(identities.revoke_token, owner, name)
        return {"revoked": name, "principal": owner}

    @app.get("/api/role-definitions")
    async def role_definitions() -> list[dict]:
        """The built-in roles, as `az role definition list` shows them."""
        return [{"roleName": r.name, "description": r.description, "roleType": "BuiltInRole",
                 "permissions": [{"actions": list(r.actions), "notActions": list(r.not_actions)}]}
                for r in sorted(BUILT_IN_ROLES.values(), key=lambda r: r.name)]

    @app.get("/api/role-assignments")
    async def list_assignments(assignee: str | None = None, scope: str | None = None,
                               caller: Caller = signed_in) -> list[dict]:
        """Assignments that apply here: at this workspace and at /; `scope` narrows to one."""
        wanted = {here, ROOT_SCOPE} if scope is None else {scope_of(scope)}
        for other in wanted - {here, ROOT_SCOPE}:   # another workspace's: read there
            await authorizer.require(caller, f"{ROLE_ASSIGNMENTS}/read", other)
        rows = await asyncio.to_thread(identities.assignments, assignee)
        return [assignment_view(r) for r in rows if r["scope"] in wanted]

    @app.post("/api/role-assignments")
    async def create_assignment(body: AssignmentBody, caller: Caller = signed_in) -> dict:
        name, scope = role(body.role).name, scope_of(body.scope)
        await authorizer.require(caller, f"{ROLE_ASSIGNMENTS}/write", scope)
        row = await asyncio.to_thread(identities.assign, body.assignee, name, scope, created_by=caller.name)
        return assignment_view(row)

    @app.delete("/api/role-assignments")
    async def delete_assignment(assignee: str, role_name: str = Query(alias="role"), scope: str | None = None,
                                caller: Caller = signed_in) -> dict:
        name, where = role(role_name).name, scope_of(scope)
        await authorizer.require(caller, f"{ROLE_ASSIGNMENTS}/delete", where)
        await asyncio.to_thread(identities.unassign, assignee, name, where)
        return {"deleted": {"principalName": assignee, "roleDefinitionName": name, "scope": where}}
