"""Data assets (`fleet data create|list|show`): versioned, immutable references to data, as on
Azure. A local path is copied into the artifact store (content-addressed, like a model); a path
`azureml://datastores/NAME/paths/modelDataCollector/...` names collected data in the workspace and
is kept by reference (a collection's windows grow as requests come)."""

from __future__ import annotations

import re
from pathlib import Path

from ..domain.errors import InvalidInput
from ..domain.names import ModelRef
from ..store.artifacts import ArtifactStore
from ..store.db import Database
from ..store.monitoring import DataAsset, DataAssetStore
from ..schema.monitoring import DataAssetSpec
from .tables import SUFFIXES, asset_files, read_files
from ..collection.windows import ROOT

_DATASTORE = re.compile(r"^azureml://datastores/[^/]+/paths/(.+)$")


class DataAssets:
    def __init__(self, db: Database, artifacts: ArtifactStore, workspace: Path):
        self.store = DataAssetStore(db)
        self.artifacts = artifacts
        self.workspace = workspace

    def create(self, spec: DataAssetSpec, base_dir: Path = Path(".")) -> DataAsset:
        collected = self._collected(spec.path)
        if collected is not None:
            if spec.type == "uri_file":
                raise InvalidInput(f"path {spec.path!r}: collected data is a folder; use type uri_folder")
            return self.store.add(spec.name, spec.version, type=spec.type, sha256=None, path=spec.path, files=[],
                                  description=spec.description, tags=spec.tags)
        src = (base_dir / spec.path).expanduser()
        self._check(src, spec.type, spec.path)
        snap = self.artifacts.add("data", src)
        # the snapshot holds the file or folder under its own name
        return self.store.add(spec.name, spec.version, type=spec.type, sha256=snap.sha256, path=src.name,
                              files=snap.files, description=spec.description, tags=spec.tags)

    @staticmethod
    def _check(src: Path, type_: str, given: str) -> None:
        if not src.exists():
            raise InvalidInput(f"path {given!r} does not exist")
        if type_ == "uri_file" and not (src.is_file() and src.suffix in SUFFIXES):
            raise InvalidInput(f"path {given!r}: a uri_file is one .csv or .parquet file")
        if type_ in ("uri_folder", "mltable") and not src.is_dir():
            raise InvalidInput(f"path {given!r}: a {type_} is a folder")
        if type_ == "mltable" and not (src / "MLTable").is_file():
            raise InvalidInput(f"path {given!r}: an mltable folder holds an MLTable file")

    def _collected(self, path: str) -> Path | None:
        m = _DATASTORE.match(path)
        if m is None:
            return None
        rel = Path(m.group(1))
        if rel.parts[:1] != (ROOT,) or ".." in rel.parts:
            raise InvalidInput(f"path {path!r}: only {ROOT}/... of a workspace datastore can be named")
        return self.workspace / rel

    def get(self, ref: str) -> DataAsset:
        """`name:version`, `name@latest` or `name`, with or without `azureml:`."""
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

    def read(self, asset: DataAsset) -> dict[str, list]:
        where = self.location(asset)
        return read_files(asset_files(where, asset.type))
