"""Data assets, monitor schedules and monitor runs: the only SQL for them.

A data asset version is immutable, like a model version: its files are a content-addressed
snapshot in the artifact store (`data/SHA256`), or, for collected data, a folder of the
workspace's `modelDataCollector/` kept by reference (it grows as requests come). A schedule holds
its monitor document and when it runs next; each run keeps every (signal, feature, metric) result.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import sqlalchemy as sa

from ..domain.errors import AlreadyExists, NotFound
from .db import Database, utcnow
from .schema import data_assets, monitor_runs, schedules

_INT = re.compile(r"^[0-9]+$")

@dataclass
class DataAsset:
    name: str
    version: str
    type: str
    path: str
    sha256: str | None
    files: list[dict]
    description: str
    tags: dict[str, str]
    created_at: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Schedule:
    name: str
    spec: dict
    enabled: bool
    next_run_at: str | None
    created_at: str
    updated_at: str

    def to_dict(self) -> dict:
        return asdict(self)


def _asset(row) -> DataAsset:
    return DataAsset(name=row.name, version=row.version, type=row.type, path=row.path, sha256=row.sha256,
                     files=row.files, description=row.description, tags=row.tags, created_at=row.created_at)


def _schedule(row) -> Schedule:
    return Schedule(name=row.name, spec=row.spec, enabled=bool(row.enabled), next_run_at=row.next_run_at,
                    created_at=row.created_at, updated_at=row.updated_at)


class DataAssetStore:
    def __init__(self, db: Database):
        self.db = db

    def add(self, name: str, version: str | None, **values) -> DataAsset:
        with self.db.write() as conn:
            if version is None:
                existing = conn.execute(sa.select(data_assets.c.version).where(data_assets.c.name == name)).scalars()
                version = str(max((int(v) for v in existing if _INT.match(v)), default=0) + 1)
            elif conn.execute(sa.select(data_assets.c.name).where(data_assets.c.name == name,
                                                                  data_assets.c.version == version)).first():
                raise AlreadyExists(f"data asset {name}:{version} already exists; versions are immutable, "
                                    "create a new version")
            seq = (conn.execute(sa.select(sa.func.max(data_assets.c.seq))).scalar() or 0) + 1
            row = dict(name=name, version=version, seq=seq, created_at=utcnow(), **values)
            conn.execute(data_assets.insert().values(**row))
        return DataAsset(**{k: v for k, v in row.items() if k != "seq"})

    def get(self, name: str, version: str | None = None) -> DataAsset:
        q = sa.select(data_assets).where(data_assets.c.name == name)
        q = q.where(data_assets.c.version == version) if version else q.order_by(data_assets.c.seq.desc()).limit(1)
        with self.db.read() as conn:
            row = conn.execute(q).first()
        if row is None:
            raise NotFound(f"data asset {name}{':' + version if version else ''} not found")
        return _asset(row)

    def list(self, name: str | None = None) -> list[DataAsset]:
        q = sa.select(data_assets).order_by(data_assets.c.name, data_assets.c.seq)
        if name:
            q = q.where(data_assets.c.name == name)
        with self.db.read() as conn:
            return [_asset(r) for r in conn.execute(q)]


class ScheduleStore:
    def __init__(self, db: Database):
        self.db = db

    def put(self, name: str, spec: dict, next_run_at: str | None) -> Schedule:
        """Create or replace a schedule's document (`az ml schedule create` on an existing name updates it)."""
        now = utcnow()
        with self.db.write() as conn:
            old = conn.execute(sa.select(schedules).where(schedules.c.name == name)).first()
            if old is None:
                conn.execute(schedules.insert().values(name=name, spec=spec, enabled=True, next_run_at=next_run_at,
                                                       created_at=now, updated_at=now))
            else:
                conn.execute(schedules.update().where(schedules.c.name == name).values(
                    spec=spec, next_run_at=next_run_at if old.enabled else None, updated_at=now))
        return self.get(name)

    def get(self, name: str) -> Schedule:
        with self.db.read() as conn:
            row = conn.execute(sa.select(schedules).where(schedules.c.name == name)).first()
        if row is None:
            raise NotFound(f"schedule {name!r} not found")
        return _schedule(row)

    def list(self) -> list[Schedule]:
        with self.db.read() as conn:
            return [_schedule(r) for r in conn.execute(sa.select(schedules).order_by(schedules.c.name))]

    def set_enabled(self, name: str, enabled: bool, next_run_at: str | None) -> Schedule:
        with self.db.write() as conn:
            done = conn.execute(schedules.update().where(schedules.c.name == name).values(
                enabled=enabled, next_run_at=next_run_at if enabled else None, updated_at=utcnow())).rowcount
        if not done:
            raise NotFound(f"schedule {name!r} not found")
        return self.get(name)

    def set_next(self, name: str, next_run_at: str | None) -> None:
        with self.db.write() as conn:
            conn.execute(schedules.update().where(schedules.c.name == name, schedules.c.enabled == sa.true())
                         .values(next_run_at=next_run_at))

    def delete(self, name: str) -> None:
        with self.db.write() as conn:
            conn.execute(monitor_runs.delete().where(monitor_runs.c.schedule == name))
            if not conn.execute(schedules.delete().where(schedules.c.name == name)).rowcount:
                raise NotFound(f"schedule {name!r} not found")

    def due(self, now: str) -> list[Schedule]:
        with self.db.read() as conn:
            return [_schedule(r) for r in conn.execute(sa.select(schedules).where(
                schedules.c.enabled == sa.true(), schedules.c.next_run_at <= now).order_by(schedules.c.next_run_at))]

    # -- runs ----------------------------------------------------------------------------------

    def add_run(self, schedule: str, **values) -> int:
        with self.db.write() as conn:
            return conn.execute(monitor_runs.insert().values(schedule=schedule, **values)).inserted_primary_key[0]

    def runs(self, schedule: str, limit: int = 100) -> list[dict]:
        """The newest `limit` runs, oldest first."""
        with self.db.read() as conn:
            rows = conn.execute(sa.select(monitor_runs).where(monitor_runs.c.schedule == schedule)
                                .order_by(monitor_runs.c.id.desc()).limit(limit)).all()
        return [dict(r._mapping) for r in reversed(rows)]

    def latest_runs(self) -> list[dict]:
        """Each schedule's newest run."""
        newest = sa.select(sa.func.max(monitor_runs.c.id)).group_by(monitor_runs.c.schedule)
        with self.db.read() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.select(monitor_runs).where(monitor_runs.c.id.in_(newest)))]
