"""The model registry: register, resolve, label, archive and delete model versions.

Versions are immutable. Files go into the content-addressed artifact store first, then into
the workspace's default datastore when it is not the local folder (assets/datastores.py); the
version row is written after, in one transaction, so a crash or a store that stops leaves no
half-registered version.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..datastores import is_datastore_uri
from ..domain.errors import InvalidInput, NotFound
from ..domain.model_types import MODEL_TYPES, detect_type
from ..domain.names import ModelRef, check_name, check_version
from ..store import ArtifactStore, Database
from ..store.models import Model, ModelStore
from .datastores import Datastores

__all__ = ["Model", "Registry", "detect_type"]  # Model lives in store/models.py, at the row edge


def _check_tags(tags: dict | None) -> dict[str, str]:
    out = {}
    for k, v in (tags or {}).items():
        if not isinstance(k, str) or not k or len(k) > 128:
            raise InvalidInput(f"invalid tag key {k!r}: 1-128 characters")
        out[k] = "" if v is None else str(v)
    return out


class Registry:
    def __init__(self, db: Database, artifacts: ArtifactStore, datastores: Datastores | None = None):
        self.db = db
        self.artifacts = artifacts
        self.datastores = datastores   # None: the local folder holds every byte (unit tests, tools)
        self.store = ModelStore(db)

    # -- reading -------------------------------------------------------------------------------

    def get(self, ref: str | ModelRef) -> Model:
        """Resolve `name:version`, `name@label` or bare `name` (latest) to one version."""
        r = ref if isinstance(ref, ModelRef) else ModelRef.parse(ref)
        if r.version is not None:
            model = self.store.version(r.name, r.version)
        elif r.label in (None, "latest"):
            model = self.store.latest(r.name)
        else:
            model = self.store.labelled(r.name, r.label)
        if model is None:
            raise NotFound(f"model {r} not found")
        return model

    def list(self, name: str | None = None, include_archived: bool = False) -> list[Model]:
        return self.store.list(name, include_archived)

    def path_of(self, model: Model, verify: bool = True) -> Path:
        """The version's folder in the workspace; one the folder lost is brought back from the
        default datastore first (the workspace's folder is then a copy of the store's blobs)."""
        if self.datastores is not None and not self.artifacts.snapshot_dir("models", model.sha256).is_dir():
            self.datastores.restore("models", model.sha256, model.files)
        if verify:
            return self.artifacts.verify("models", model.sha256, model.files)
        return self.artifacts.snapshot_dir("models", model.sha256)

    # -- writing -------------------------------------------------------------------------------

    def register(self, name: str, path: str | Path, version: str | None = None, *,
                 description: str = "", tags: dict | None = None, type: str | None = None,
                 exist_ok: bool = False, reuse_same_content: bool = False) -> Model:
        """Register files (a local path, or a datastore URI) as a new version. `reuse_same_content`
        (with no version given) returns the newest existing version holding identical files
        instead of adding one."""
        version, tags = self._check(name, version, type, tags)
        if is_datastore_uri(str(path)):
            if self.datastores is None:
                raise InvalidInput(f"path {str(path)!r}: this registry reads no datastores")
            snap = self.datastores.read(str(path), "models")
        else:
            snap = self.artifacts.add("models", path)
        return self._add(name, version, snap.sha256, snap.files, description, tags, type, exist_ok,
                         reuse_same_content)

    def register_snapshot(self, name: str, version: str | None, sha256: str, files: list[dict], *,
                          description: str = "", tags: dict | None = None, type: str | None = None,
                          exist_ok: bool = False, reuse_same_content: bool = False) -> Model:
        """Register a snapshot already in the store (uploaded by a client): `files` must hash to
        `sha256` and name exactly the snapshot's files, sizes included."""
        version, tags = self._check(name, version, type, tags)
        files = self.artifacts.described("models", sha256, files)
        return self._add(name, version, sha256, files, description, tags, type, exist_ok, reuse_same_content)

    @staticmethod
    def _check(name: str, version: str | None, type: str | None, tags: dict | None) -> tuple[str | None, dict]:
        check_name(name, "model name")
        if version is not None:
            version = check_version(version)
        if type is not None and type not in MODEL_TYPES:
            raise InvalidInput(f"invalid model type {type!r}: use one of {', '.join(MODEL_TYPES)}")
        return version, _check_tags(tags)

    def _add(self, name, version, sha256, files, description, tags, type, exist_ok, reuse_same_content) -> Model:
        if self.datastores is not None:
            self.datastores.commit("models", sha256, files)   # the bytes are in the store before the row
        return self.store.add(name, version, type=type or detect_type(files), sha256=sha256,
                              size=sum(f["size"] for f in files), files=files, description=description, tags=tags,
                              exist_ok=exist_ok, reuse_same_content=reuse_same_content)

    def update(self, name: str, version: str, *, description: str | None = None,
               tags: dict | None = None, remove_tags: list[str] | None = None) -> Model:
        self.store.update(name, version, description=description, tags=_check_tags(tags), remove_tags=remove_tags)
        return self.get(ModelRef(name, version=version))

    def set_archived(self, name: str, version: str, archived: bool) -> Model:
        self.store.set_archived(name, version, archived)
        return self.get(ModelRef(name, version=version))

    def label(self, name: str, version: str, label: str) -> Model:
        check_name(label, "label")
        if label == "latest":
            raise InvalidInput("label 'latest' is built in and always means the newest version")
        self.store.set_label(name, version, label)
        return self.get(ModelRef(name, version=version))

    def unlabel(self, name: str, label: str) -> None:
        if not self.store.remove_label(name, label):
            raise NotFound(f"label {name}@{label} not found")

    def delete(self, name: str, version: str) -> None:
        orphaned = self.store.delete(name, version)
        if orphaned is not None:
            self.artifacts.remove("models", orphaned)

    def download(self, ref: str, dest: str | Path) -> Path:
        model = self.get(ref)
        src = self.path_of(model)
        out = Path(dest).expanduser() / model.name
        out.mkdir(parents=True, exist_ok=True)
        for f in model.files:
            target = out / f["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / f["path"], target)
        return out
