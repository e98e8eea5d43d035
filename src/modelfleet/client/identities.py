"""`fleet.users`, `fleet.tokens`, `fleet.role_assignments`: who may do what, over the control API.

A token is returned once, by the call that makes it (a user's first token, or `tokens.create`);
the server keeps only its hash.
"""

from __future__ import annotations


class UserOperations:
    """Users and service principals (`kind="service_principal"`)."""

    def __init__(self, fleet):
        self._f = fleet

    def create(self, name: str, *, kind: str = "user", description: str = "", token_name: str = "default",
               expires_in: str | None = None) -> dict:
        """The principal and its first token (`token`), shown this once."""
        return self._f.request("POST", "/api/principals", json={
            "name": name, "kind": kind, "description": description, "token_name": token_name,
            "expires_in": expires_in})

    def list(self, kind: str | None = None) -> list[dict]:
        return self._f.request("GET", "/api/principals", params={"kind": kind} if kind else None)

    def get(self, name: str) -> dict:
        """The principal, its role assignments and its tokens (names and dates, never the tokens)."""
        return self._f.request("GET", f"/api/principals/{name}")

    def delete(self, name: str) -> dict:
        """Its tokens and role assignments go with it, at once."""
        return self._f.request("DELETE", f"/api/principals/{name}")

    def me(self) -> dict:
        """Who this client's token belongs to, the server's workspace, and its role assignments."""
        return self._f.request("GET", "/api/identity")


class TokenOperations:
    """API tokens: the caller's own, or (an Owner) another principal's."""

    def __init__(self, fleet):
        self._f = fleet

    def create(self, name: str, *, expires_in: str | None = None, principal: str | None = None) -> dict:
        return self._f.request("POST", "/api/tokens", json={"name": name, "expires_in": expires_in,
                                                            "principal": principal})

    def list(self, principal: str | None = None) -> list[dict]:
        return self._f.request("GET", "/api/tokens", params={"principal": principal} if principal else None)

    def revoke(self, name: str, principal: str | None = None) -> dict:
        """Refused from the next request on."""
        return self._f.request("DELETE", f"/api/tokens/{name}",
                               params={"principal": principal} if principal else None)


class RoleAssignmentOperations:
    """As `az role assignment`: a built-in role for a principal at a scope (`/` or the workspace)."""

    def __init__(self, fleet):
        self._f = fleet

    def create(self, assignee: str, role: str, scope: str | None = None) -> dict:
        return self._f.request("POST", "/api/role-assignments",
                               json={"assignee": assignee, "role": role, "scope": scope})

    def list(self, assignee: str | None = None, scope: str | None = None) -> list[dict]:
        params = {k: v for k, v in (("assignee", assignee), ("scope", scope)) if v}
        return self._f.request("GET", "/api/role-assignments", params=params or None)

    def delete(self, assignee: str, role: str, scope: str | None = None) -> dict:
        params = {"assignee": assignee, "role": role, **({"scope": scope} if scope else {})}
        return self._f.request("DELETE", "/api/role-assignments", params=params)

    def definitions(self) -> list[dict]:
        """The built-in roles a role assignment may name, with their actions (`az role definition list`)."""
        return self._f.request("GET", "/api/role-definitions")


class ActivityLogOperations:
    """Every change and refused change: who, when, the action, the resource, from where, the result."""

    def __init__(self, fleet):
        self._f = fleet

    def list(self, since: str | None = None, caller: str | None = None, limit: int = 1000) -> list[dict]:
        params = {"limit": limit, **{k: v for k, v in (("since", since), ("caller", caller)) if v}}
        return self._f.request("GET", "/api/activity-log", params=params)

    def access_log_lines(self, since: str | None = None, caller: str | None = None, limit: int = 1000) -> str:
        """The same entries in the access log's line format (JSON lines), for log shippers."""
        params = {"limit": limit, "format": "access-log",
                  **{k: v for k, v in (("since", since), ("caller", caller)) if v}}
        with self._f.connection.stream("GET", "/api/activity-log", params=params, timeout=60) as r:
            return r.read().decode()
