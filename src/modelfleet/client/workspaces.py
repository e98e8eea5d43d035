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

    def _request(self, method: str, name: str = "", body: dict | None = None) -> dict | list:
        path = f"/api/workspaces/{name}" if name else "/api/workspaces"
        return self._f.request(method, self._f.connection.server_wide(path), json=body)

    def create(self, name: str, default_datastore: dict | None = None) -> dict:
        """`default_datastore`: a datastore document (client/datastores.py's load_document) that the
        workspace's model and code uploads go to from its start; one the server cannot reach
        leaves no workspace behind."""
        body = {"default_datastore": default_datastore} if default_datastore is not None else None
        return self._marked(self._request("PUT", name, body))

    def list(self) -> list[dict]:
        return [self._marked(w) for w in self._request("GET")]

    def get(self, name: str) -> dict:
        return self._marked(self._request("GET", name))

    def delete(self, name: str) -> dict:
        return self._request("DELETE", name)
