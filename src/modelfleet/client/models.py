"""`fleet.models`: model versions, registered by uploading their files to the server."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..domain.errors import InvalidInput
from ..domain.names import ModelRef, check_name
from ..schema.records import Model
from . import transfer

if TYPE_CHECKING:
    from ..schema.documents import ModelSpec


class ModelOperations:
    def __init__(self, fleet):
        self._f = fleet

    def _call(self, method: str, path: str, **kw) -> Model:
        return Model.from_dict(self._f.request(method, path, **kw))

    def register(self, name: str, path: str | Path, version: str | int | None = None, *,
                 description: str = "", tags: dict | None = None, type: str | None = None,
                 exist_ok: bool = False, reuse_same_content: bool = False) -> Model:
        """Upload the files at `path` (unless the server holds them already) and register them as
        a version; a datastore URI (azureml://datastores/<ds>/paths/<p>, the long azureml://
        subscriptions/... form, https://<account>.blob.core.windows.net/<c>/<p>) is read by the
        server instead. `reuse_same_content` (no version given) returns the newest version holding
        identical files instead of adding one."""
        check_name(name, "model name")   # before any byte is sent
        body = {"version": None if version is None else str(version), "description": description,
                "tags": tags or {}, "type": type, "exist_ok": exist_ok, "reuse_same_content": reuse_same_content}
        if transfer.is_uri(path):
            return self._call("POST", f"/api/models/{name}/versions", json={**body, "path": str(path)}, timeout=None)
        sha256, files = transfer.upload(self._f.connection, "models", path)
        return self._call("POST", f"/api/models/{name}/versions", json={**body, "sha256": sha256, "files": files},
                          timeout=None)

    create = register

    def register_spec(self, spec: ModelSpec, base_dir: Path = Path("."), **kw) -> Model:
        path = spec.path if transfer.is_uri(spec.path) else Path(spec.path)
        path = path if isinstance(path, str) or path.is_absolute() else base_dir / path
        return self.register(spec.name, path, spec.version, description=spec.description, tags=spec.tags,
                             type=spec.type, **kw)

    def get(self, name: str, version: str | None = None, label: str | None = None) -> Model:
        if version is not None and label is not None:
            raise InvalidInput("give --version or --label, not both")
        return self.resolve(f"{name}:{version}" if version is not None else f"{name}@{label or 'latest'}")

    def resolve(self, ref: str) -> Model:
        """`name:version`, `name@label` or bare `name` (latest)."""
        r = ModelRef.parse(ref)
        if r.version is not None:
            return self._call("GET", f"/api/models/{r.name}/versions/{r.version}")
        return self._call("GET", f"/api/models/{r.name}/labels/{r.label or 'latest'}")

    def list(self, name: str | None = None, include_archived: bool = False) -> list[Model]:
        params = {"include_archived": str(include_archived).lower(), **({"name": name} if name else {})}
        return [Model.from_dict(m) for m in self._f.request("GET", "/api/models", params=params)]

    def update(self, name: str, version: str, *, description: str | None = None, tags: dict | None = None,
               remove_tags: list[str] | None = None) -> Model:
        return self._call("PATCH", f"/api/models/{name}/versions/{version}",
                          json={"description": description, "tags": tags, "remove_tags": remove_tags})

    def archive(self, name: str, version: str) -> Model:
        return self._call("PUT", f"/api/models/{name}/versions/{version}/archived", json={"archived": True})

    def restore(self, name: str, version: str) -> Model:
        return self._call("PUT", f"/api/models/{name}/versions/{version}/archived", json={"archived": False})

    def label(self, name: str, version: str, label: str) -> Model:
        return self._call("PUT", f"/api/models/{name}/labels/{label}", json={"version": version})

    def download(self, name: str, version: str | None = None, label: str | None = None,
                 download_path: str | Path = ".") -> Path:
        """The version's files under `download_path`/NAME, each checked against its sha256."""
        m = self.get(name, version, label)
        return self.download_to(m, Path(download_path).expanduser() / m.name)

    def download_to(self, model: Model, dest: Path) -> Path:
        """`model`'s files under `dest` (their paths start with the registered folder's name)."""
        return transfer.download(self._f.connection, model.to_dict(), dest)

    def verified_path(self, model: Model) -> str:
        """Where the server keeps the version's files (every byte checked first): export's paths."""
        return self._f.request("POST", f"/api/models/{model.name}/versions/{model.version}/verify",
                               timeout=None)["path"]

    def delete(self, name: str, version: str) -> None:
        self._f.request("DELETE", f"/api/models/{name}/versions/{version}")
