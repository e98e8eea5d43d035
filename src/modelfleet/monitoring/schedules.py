"""Monitor schedules as the control API changes them (`fleet schedule create|enable|disable|delete`):
a document is checked whole, and its reference data must exist, before anything is written; the
first run is set from its trigger. Running a monitor is scheduler.py's."""

from __future__ import annotations

from ..schema.monitoring import MonitorScheduleSpec
from ..schema.validation import validate
from ..store.monitoring import ScheduleStore
from .data_assets import DataAssets
from .scheduler import first_run


class Schedules:
    def __init__(self, store: ScheduleStore, assets: DataAssets):
        self.store = store
        self.assets = assets

    def put(self, name: str, document: dict) -> dict:
        """Create or replace schedule `name` from its document (Azure's monitor schedule YAML)."""
        spec = validate(MonitorScheduleSpec, {**document, "name": name}, f"schedule {name}")
        for ref in sorted(_data_refs(spec)):
            self.assets.get(ref)   # data that does not exist is refused now, not at 3 am
        return self.store.put(spec.name, spec.data(), first_run(spec)).to_dict()

    def get(self, name: str) -> dict:
        """The schedule, and its latest run's result per signal, feature and metric."""
        out = self.store.get(name).to_dict()
        runs = self.store.runs(name, 1)
        out["latest_run"] = runs[-1] if runs else None
        return out

    def list(self) -> list[dict]:
        return [s.to_dict() for s in self.store.list()]

    def set_enabled(self, name: str, enabled: bool) -> dict:
        if not enabled:
            return self.store.set_enabled(name, False, None).to_dict()
        spec = validate(MonitorScheduleSpec, self.store.get(name).spec, f"schedule {name}")
        return self.store.set_enabled(name, True, first_run(spec)).to_dict()

    def delete(self, name: str) -> None:
        self.store.delete(name)

    def runs(self, name: str, limit: int) -> list[dict]:
        self.store.get(name)   # an unknown name is not found, not an empty list
        return self.store.runs(name, limit)


def _data_refs(spec: MonitorScheduleSpec) -> set[str]:
    """The data assets a monitor reads: every signal's reference data, and production data given as one."""
    out = set()
    for signal in spec.create_monitor.monitoring_signals.values():
        for data in (signal.reference_data, signal.production_data):
            if data is not None and data.input_data is not None:
                out.add(data.input_data.path)
    return out
