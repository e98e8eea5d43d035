"""Who is calling and whether they may: every control API route goes through `Authorizer`.

    bearer token --(hash lookup)--> principal --(role assignments at the scope)--> allowed or not

An unknown, expired or revoked token is 401; a known caller without a role at the workspace gets
404 for it (they learn nothing of what it holds), and so does every caller for a workspace nobody
hosts, after the same token check, so that the two answer alike; under a hosted workspace's prefix
only the pages without data (the API's shape, the dashboard's files) answer without a token; a caller whose roles do not grant the route's
action is 403, naming the caller, the action and the scope. Failed attempts are counted per client
address (failed_attempts.py); a request with no credential at all is not an attempt. The launcher's token (run/server.json, new at each start) is the
first admin's: it is checked like any other principal's roles, never a way around them.
"""

from __future__ import annotations

import asyncio
import hmac
from dataclasses import dataclass, field

from fastapi import Request

from ...domain.errors import Forbidden, NotFound, RateLimited, Unauthorized
from ...domain.roles import allowed
from ...store.identities import ROOT_SCOPE, IdentityStore
from .failed_attempts import FailedAttempts
from .permissions import SERVER, Permission, permission

FIRST_ADMIN = "admin"   # the principal bootstrapped at the first start, Owner at /
AUDIT = "modelfleet.audit"   # the scope key where the activity log middleware reads what was decided
PREFIXED = "modelfleet.workspace"   # the scope key: the request came under a hosted /workspaces/NAME (server/app.py)
UNHOSTED = "modelfleet.unhosted"    # the scope key: ... and nobody hosts NAME here (the primary's API answers)


@dataclass
class Audit:
    """What authorization decided about one request, for the activity log."""
    caller: str = ""
    action: str = ""
    is_read: bool = True


@dataclass(frozen=True)
class Caller:
    name: str
    roles: tuple[str, ...] = field(default=())   # at the route's scope


def workspace_scope(workspace: str) -> str:
    return f"/workspaces/{workspace}"


class Authorizer:
    def __init__(self, identities: IdentityStore, workspace: str, launcher_token: str,
                 attempts: FailedAttempts, open_paths: frozenset[str] = frozenset()):
        self.identities = identities
        self.workspace = workspace
        self._launcher_token = launcher_token.encode()
        self.attempts = attempts
        self.open_paths = open_paths   # routes the server's settings leave open (/metrics on loopback)

    def scope_of(self, perm: Permission) -> str:
        return ROOT_SCOPE if perm.scope == SERVER else workspace_scope(self.workspace)

    async def __call__(self, request: Request) -> Caller | None:
        route = request.scope.get("route")
        path = getattr(route, "path_format", request.url.path)
        perm = permission(request.method, path)
        audit = request.scope.get(AUDIT) or Audit()
        if perm is None:
            raise Forbidden(f"{request.method} {path}: no permission is declared for this route, so nobody may call it")
        act = perm.action_for(request.path_params)
        audit.action, audit.is_read = act, perm.is_read
        prefixed = request.scope.get(PREFIXED)
        if perm.public or (path in self.open_paths and prefixed is None):
            return None
        address = request.client.host if request.client else ""
        wait = self.attempts.retry_after(address)
        if wait:
            raise RateLimited(f"too many failed token attempts from {address}; retry in {wait}s", retry_after=wait)
        scope = self.scope_of(perm)
        header = request.headers.get("authorization", "")
        # a server-wide route under a workspace's prefix: the prefix must not tell that it exists
        hiding = prefixed is not None and (perm.scope == SERVER or not perm.role_needed)
        name, roles, holds_here = await asyncio.to_thread(
            self._resolve, header, scope if perm.role_needed else None,
            workspace_scope(self.workspace) if hiding else None)
        if name is None:
            if header:   # a guess; a request with no credential at all guesses nothing
                self.attempts.failed(address)
            raise Unauthorized("missing, invalid, expired or revoked token (Authorization: Bearer <token>)")
        audit.caller = name
        if request.scope.get(UNHOSTED):
            raise NotFound(f"workspace {prefixed!r} not found")
        if hiding and not holds_here:
            raise NotFound(f"workspace {self.workspace!r} not found")
        if not perm.role_needed:
            return Caller(name)
        if not roles and perm.scope != SERVER:
            # no role here at all: the workspace does not exist for them
            raise NotFound(f"workspace {self.workspace!r} not found")
        if not allowed(roles, act):
            raise Forbidden(f"{name} lacks permission {act} at scope {scope}")
        return Caller(name, roles)

    def _resolve(self, header: str, scope: str | None,
                 workspace: str | None) -> tuple[str | None, tuple[str, ...], bool]:
        """The caller, their roles at `scope`, and whether they hold a role at `workspace` (a
        scope), in one trip to a worker thread."""
        name = self.authenticate(header)
        if name is None:
            return None, (), False
        roles = tuple(self.identities.roles_at(name, scope)) if scope is not None else ()
        return name, roles, workspace is not None and bool(self.identities.roles_at(name, workspace))

    def authenticate(self, header: str) -> str | None:
        """The principal a bearer token belongs to, or None (blocking: a store lookup)."""
        scheme, _, token = header.partition(" ")
        if scheme != "Bearer" or not token or token != token.strip():
            return None
        if hmac.compare_digest(token.encode(), self._launcher_token):
            return FIRST_ADMIN
        return self.identities.authenticate(token)

    async def require(self, caller: Caller, act: str, scope: str) -> None:
        """A second check a route makes itself (another principal's tokens, an assignment at /)."""
        roles = await asyncio.to_thread(self.identities.roles_at, caller.name, scope)
        if not allowed(roles, act):
            raise Forbidden(f"{caller.name} lacks permission {act} at scope {scope}")
