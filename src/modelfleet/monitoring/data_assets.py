"""Data assets (`fleet data create|list|show`): versioned, immutable references to data, as on
Azure. A local path is copied into the artifact store (content-addressed, like a model); a path
`azureml://datastores/NAME/paths/modelDataCollector/...` names collected data in the workspace and
is kept by reference (a collection's windows grow as requests come). Collected windows are read
from the workspace's folder, and from the datastore the path names (else the default one, when a
blob container) for the files the folder lacks: windows whose local copy is gone. A monitor
reads its deployment's own collection (no `input_data`) the same way, over its data window."""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from pathlib import Path

from ..datastores import LOCAL_NAME, open_datastore
from ..datastores.collected import fetch_missing
from ..domain.errors import DatastoreError, InvalidInput, NotFound
from ..domain.names import ModelRef
from ..store.artifacts import ArtifactStore
from ..store.db import Database
from ..store.monitoring import DataAsset, DataAssetStore
from ..files.digests import walk
from ..schema.monitoring import DataAssetSpec, check_data_layout
from .tables import asset_files, read_files
from ..collection.windows import ROOT, collection_dir, files_between

log = logging.getLogger("modelfleet.monitoring")

_DATASTORE = re.compile(r"^azureml://datastores/([^/]+)/paths/(.+)$")


class DataAssets:
    def __init__(self, db: Database, artifacts: ArtifactStore, workspace: Path, datastores=None):
        self.store = DataAssetStore(db)
        self.artifacts = artifacts
        self.workspace = workspace
        self.datastores = datastores   # assets/datastores.py: where collected windows are read from too

    def create(self, spec: DataAssetSpec, base_dir: Path = Path(".")) -> DataAsset:
        """A data asset from files on the server's machine (benchmarks, the server's own use)."""
        if self._collected(spec.path) is not None:
            return self.add_collected(spec)
        src = (base_dir / spec.path).expanduser()
        if not src.exists():
            raise InvalidInput(f"path {spec.path!r} does not exist")
        check_data_layout(spec.type, spec.path, [rel for _, rel in walk(src)])
        snap = self.artifacts.add("data", src)
        return self._add(spec, snap.sha256, snap.files)

    def register_snapshot(self, spec: DataAssetSpec, sha256: str, files: list[dict]) -> DataAsset:
        """A data asset from files a client uploaded (`PUT /api/artifacts/data/SHA`): `files` must
        name exactly that snapshot, laid out as `spec.type` says."""
        files = self.artifacts.described("data", sha256, files)
        check_data_layout(spec.type, spec.path, [f["path"] for f in files])
        return self._add(spec, sha256, files)

    def add_collected(self, spec: DataAssetSpec) -> DataAsset:
        """Collected data (`azureml://datastores/NAME/paths/modelDataCollector/...`), kept by reference."""
        if self._collected(spec.path) is None:
            raise InvalidInput(f"path {spec.path!r}: upload local files (only collected data is named by a "
                               "datastore path)")
        if spec.type == "uri_file":
            raise InvalidInput(f"path {spec.path!r}: collected data is a folder; use type uri_folder")
        return self.store.add(spec.name, spec.version, type=spec.type, sha256=None, path=spec.path, files=[],
                              description=spec.description, tags=spec.tags)

    def _add(self, spec: DataAssetSpec, sha256: str, files: list[dict]) -> DataAsset:
        # the snapshot holds the file or folder under its own name: the first part of every path
        top = files[0]["path"].split("/", 1)[0]
        return self.store.add(spec.name, spec.version, type=spec.type, sha256=sha256, path=top, files=files,
                              description=spec.description, tags=spec.tags)

    def _collected(self, path: str) -> Path | None:
        m = _DATASTORE.match(path)
        if m is None:
            return None
        rel = Path(m.group(2))
        if rel.parts[:1] != (ROOT,) or ".." in rel.parts:
            raise InvalidInput(f"path {path!r}: only {ROOT}/... of a workspace datastore can be named")
        return self.workspace / rel

    def get(self, ref: str) -> DataAsset:
        """`name:version`, `name@latest` or `name`, with or without `azureml:`; or a path
        `azureml://datastores/NAME/paths/modelDataCollector/...` itself (a monitor's input_data)."""
        if self._collected(ref) is not None:
            return DataAsset(name=ref, version="", type="uri_folder", path=ref, sha256=None, files=[],
                             description="", tags={})
        r = ModelRef.parse(ref, "data asset")
        if r.label not in (None, "latest"):
            raise InvalidInput(f"data asset {ref!r}: data assets have versions and @latest, no labels")
        return self.store.get(r.name, r.version)

    def list(self, name: str | None = None) -> list[DataAsset]:
        return self.store.list(name)

    def location(self, asset: DataAsset) -> Path:
        if asset.sha256 is None:
            return self._collected(asset.path)
        base = self.artifacts.snapshot_dir("data", asset.sha256)
        return base / asset.path if asset.path else base

    def read(self, asset: DataAsset, start=None, end=None) -> dict[str, list]:
        """Its columns; rows between `start` and `end` only when given (collected data has times)."""
        where = self.location(asset)
        if asset.sha256 is not None:
            return read_files(asset_files(where, asset.type))
        m = _DATASTORE.match(asset.path)
        return self._read_collected(self._store(m.group(1)), m.group(2), where, asset_files(where, asset.type),
                                    start, end)

    def read_collection(self, endpoint: str, deployment: str, collection: str, start, end) -> dict[str, list]:
        """What a deployment collected between `start` and `end`: the workspace's folder, and from
        the default datastore (a blob container) the files of those windows the folder lacks."""
        folder = collection_dir(self.workspace, endpoint, deployment, collection)
        store = self._default_store()
        return self._read_collected(store, folder.relative_to(self.workspace).as_posix(), folder,
                                    files_between(folder, start, end), start, end)

    def _read_collected(self, store, path: str, where: Path, local: list[Path], start, end) -> dict[str, list]:
        if store is None:
            return read_files(local, start, end)
        self.artifacts.tmp.mkdir(parents=True, exist_ok=True)
        fetched = Path(tempfile.mkdtemp(prefix="collected-", dir=self.artifacts.tmp))
        try:
            try:
                remote = fetch_missing(store, path, where, fetched, start, end)
            except DatastoreError as e:   # the store is down: what the folder holds is read, and said so
                log.warning("%s: read from the workspace's folder only: %s", path, e)
                remote = []
            return read_files(sorted(local + remote), start, end)
        finally:
            shutil.rmtree(fetched, ignore_errors=True)

    def _default_store(self):
        return self.datastores.default() if self.datastores is not None else None

    def _store(self, name: str):
        """The blob datastore a collected path names, else the default one if it is a blob
        container (Azure's `workspaceblobstore` is the workspace's default), else None."""
        if self.datastores is None or name == LOCAL_NAME:
            return None
        try:
            doc = self.datastores.store.get(name)
        except NotFound:
            return self._default_store()
        return open_datastore(doc)
