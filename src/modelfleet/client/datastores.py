"""`fleet.datastores`: Azure's datastore documents (`type: azure_blob`), over the control API.

A document's secret travels to the server once, at create or update, and is stored encrypted
there; `get` and `list` never carry it back. `list_secrets` does (Azure's listSecrets action),
for who may manage the workspace.
"""

from __future__ import annotations

from pathlib import Path

from ..domain.errors import InvalidInput
from ..schema import yaml_files

def load_document(path: str | Path, name: str | None = None) -> dict:
    """A datastore YAML (Azure's files work unchanged) as a dict, `name` overriding its own."""
    doc = yaml_files.load_one(path)
    if name is not None:
        doc["name"] = name
    if not doc.get("name"):
        raise InvalidInput(f"{path}: name: required (or give --name)")
    return doc


class DatastoreOperations:
    def __init__(self, fleet):
        self._f = fleet

    def create(self, document: dict, default: bool = False) -> dict:
        """Add a datastore; `default` makes model and code uploads go to it."""
        return self._f.request("POST", "/api/datastores", json={"document": document, "default": default})

    def update(self, document: dict, default: bool = False) -> dict:
        """Replace a datastore's document (its credentials included) by the one given."""
        return self._f.request("PUT", f"/api/datastores/{document.get('name')}",
                               json={"document": document, "default": default})

    def list(self) -> list[dict]:
        return self._f.request("GET", "/api/datastores")

    def get(self, name: str) -> dict:
        return self._f.request("GET", f"/api/datastores/{name}")

    show = get

    def set_default(self, name: str) -> dict:
        """Make `name` the workspace's default datastore (`workspaceartifactstore`: its own folder)."""
        return self._f.request("PUT", f"/api/datastores/{name}/default")

    def get_default(self) -> dict:
        return next(d for d in self.list() if d["is_default"])

    def list_secrets(self, name: str) -> dict:
        """The stored credential: {"secrets_type": "account_key", "account_key": ...} (or sas_token, none)."""
        return self._f.request("POST", f"/api/datastores/{name}/listSecrets")

    def delete(self, name: str) -> None:
        self._f.request("DELETE", f"/api/datastores/{name}")
