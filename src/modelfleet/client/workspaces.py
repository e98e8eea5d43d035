"""The workspaces a server hosts, over its API (`ml_client.workspaces` in Azure's SDK): made,
listed, shown and deleted by name. A local workspace (no server given) is a folder instead:
schema/workspace.py's Workspaces."""

from __future__ import annotations


class WorkspaceOperations:
    def __init__(self, fleet):
        self._f = fleet

    def _marked(self, view: dict) -> dict:
        """`current`: the workspace this Fleet talks to (the server's primary unless one was named)."""
        wanted = self._f.workspace_requested
        return {**view, "current": view["name"] == wanted if wanted else bool(view.get("primary"))}

    def _request(self, method: str, name: str = "") -> dict | list:
        path = f"/api/workspaces/{name}" if name else "/api/workspaces"
        return self._f.request(method, self._f.connection.server_wide(path))

    def create(self, name: str) -> dict:
        return self._marked(self._request("PUT", name))

    def list(self) -> list[dict]:
        return [self._marked(w) for w in self._request("GET")]

    def get(self, name: str) -> dict:
        return self._marked(self._request("GET", name))

    def delete(self, name: str) -> dict:
        return self._request("DELETE", name)
