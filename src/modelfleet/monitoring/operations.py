"""The Python API of monitoring: `Fleet.data` (data assets) and `Fleet.schedules` (monitors).

Registry work (data assets, schedule documents) is written to the workspace's store, as models
are; running a monitor is the server's (`POST /api/schedules/{name}/run`), so that results, alerts
and /metrics live in one place.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from ..domain.errors import Conflict
from ..schema.validation import validate
from ..store.monitoring import DataAsset, ScheduleStore
from .data_assets import DataAssets
from .scheduler import first_run
from ..schema.monitoring import DataAssetSpec, MonitorScheduleSpec


def _workspace_store(fleet):
    """Data assets and schedule documents are still written by the client into a local workspace's
    store (they have no API routes yet): refused in one line for a server elsewhere."""
    if fleet.workspace is None:
        raise Conflict(f"data assets and schedules are not served over the API yet: use them on the machine of "
                       f"the server at {fleet.connection.url}")
    from ..store import ArtifactStore, Database
    return Database(fleet.workspace.db_url), ArtifactStore(fleet.workspace.artifacts)


class DataOperations:
    def __init__(self, fleet):
        self._f = fleet

    @cached_property
    def _assets(self) -> DataAssets:
        db, artifacts = _workspace_store(self._f)
        return DataAssets(db, artifacts, self._f.workspace.path)

    def create(self, name: str | None = None, path: str | None = None, *, version: str | None = None,
               type: str = "uri_folder", description: str = "", tags: dict | None = None,
               spec: DataAssetSpec | None = None, base_dir: str | Path = ".") -> DataAsset:
        if spec is None:
            fields = dict(name=name, path=path, version=version, type=type, description=description, tags=tags or {})
            spec = validate(DataAssetSpec, {k: v for k, v in fields.items() if v is not None})
        return self._assets.create(spec, Path(base_dir))

    def get(self, name: str, version: str | None = None) -> DataAsset:
        return self._assets.get(f"{name}:{version}" if version else name)

    def resolve(self, ref: str) -> DataAsset:
        """`azureml:NAME:VERSION`, `NAME:VERSION` or `NAME@latest`."""
        return self._assets.get(ref)

    def list(self, name: str | None = None) -> list[DataAsset]:
        return self._assets.list(name)

    def read(self, ref: str) -> dict[str, list]:
        """A data asset's rows as columns ({name: values})."""
        return self._assets.read(self._assets.get(ref))


class ScheduleOperations:
    def __init__(self, fleet):
        self._f = fleet

    @cached_property
    def _store(self) -> ScheduleStore:
        return ScheduleStore(_workspace_store(self._f)[0])

    def create_or_update(self, spec: MonitorScheduleSpec) -> dict:
        for ref in {s.reference_data.input_data.path for s in spec.create_monitor.monitoring_signals.values()}:
            self._f.data.resolve(ref)   # a reference that does not exist is refused now, not at 3 am
        return self._store.put(spec.name, spec.data(), first_run(spec)).to_dict()

    def get(self, name: str) -> dict:
        """The schedule, and its latest run's result per signal, feature and metric."""
        out = self._store.get(name).to_dict()
        runs = self._store.runs(name, 1)
        out["latest_run"] = runs[-1] if runs else None
        return out

    def list(self) -> list[dict]:
        return [s.to_dict() for s in self._store.list()]

    def enable(self, name: str) -> dict:
        spec = validate(MonitorScheduleSpec, self._store.get(name).spec)
        return self._store.set_enabled(name, True, first_run(spec)).to_dict()

    def disable(self, name: str) -> dict:
        return self._store.set_enabled(name, False, None).to_dict()

    def delete(self, name: str) -> None:
        self._store.delete(name)

    def run(self, name: str) -> dict:
        """Run the monitor now, in the server; the run with every result."""
        self._store.get(name)   # not found: said here, without starting a server
        return self._f.request("POST", f"/api/schedules/{name}/run", timeout=3600)

    def runs(self, name: str, limit: int = 100) -> list[dict]:
        return self._store.runs(name, limit)
