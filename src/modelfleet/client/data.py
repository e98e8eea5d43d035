"""`fleet.data`: data assets (reference data for monitors, collected data), registered by
uploading their files to the server as models are (docs/monitoring.md)."""

from __future__ import annotations

from pathlib import Path

from ..domain.errors import InvalidInput
from ..domain.names import ModelRef
from ..files.digests import walk
from ..schema.monitoring import DataAssetSpec, check_data_layout
from ..schema.validation import validate
from . import transfer
from .resources import Resource, resources

COLLECTED = "azureml://datastores/"   # collected data: named by its datastore path, not uploaded


class DataOperations:
    def __init__(self, fleet):
        self._f = fleet

    @resources
    def create(self, name: str | None = None, path: str | Path | None = None, *, version: str | None = None,
               type: str = "uri_folder", description: str = "", tags: dict | None = None,
               spec: DataAssetSpec | None = None, base_dir: str | Path = ".") -> Resource:
        """A new version from a local file, folder or MLTable folder (uploaded unless the server
        holds those files already), or from collected data (`azureml://datastores/NAME/paths/
        modelDataCollector/...`, kept by reference)."""
        if spec is None:
            fields = dict(name=name, path=None if path is None else str(path), version=version, type=type,
                          description=description, tags=tags or {})
            spec = validate(DataAssetSpec, {k: v for k, v in fields.items() if v is not None})
        body = {"version": spec.version, "type": spec.type, "path": spec.path, "description": spec.description,
                "tags": spec.tags}
        if not spec.path.startswith(COLLECTED):
            src = (Path(base_dir) / spec.path).expanduser()
            if not src.exists():
                raise InvalidInput(f"path {spec.path!r} does not exist")
            check_data_layout(spec.type, spec.path, [rel for _, rel in walk(src)])   # before any byte is sent
            body["sha256"], body["files"] = transfer.upload(self._f.connection, "data", src)
        return self._f.request("POST", f"/api/data/{spec.name}/versions", json=body)

    @resources
    def get(self, name: str, version: str | None = None) -> Resource:
        """A version, or the latest."""
        if version is None:
            return self._f.request("GET", f"/api/data/{name}")
        return self._f.request("GET", f"/api/data/{name}/versions/{version}")

    def resolve(self, ref: str) -> Resource:
        """`azureml:NAME:VERSION`, `NAME:VERSION`, `NAME@latest` or `NAME`."""
        r = self._ref(ref)
        return self.get(r.name, r.version)

    @resources
    def list(self, name: str | None = None) -> list[Resource]:
        return self._f.request("GET", "/api/data", params={"name": name} if name else None)

    def read(self, ref: str) -> dict[str, list]:
        """A data asset's rows as columns ({name: values}), read by the server."""
        asset = self.resolve(ref)
        return self._f.request("GET", f"/api/data/{asset.name}/versions/{asset.version}/columns", timeout=None)

    @staticmethod
    def _ref(ref: str) -> ModelRef:
        r = ModelRef.parse(ref, "data asset")
        if r.label not in (None, "latest"):
            raise InvalidInput(f"data asset {ref!r}: data assets have versions and @latest, no labels")
        return r
