"""The monitoring store (data assets, schedules, monitor runs) on SQLite and on PostgreSQL:
versions numbered and immutable, schedules due in order, runs kept per schedule and deleted with it."""

from __future__ import annotations

import pytest

from modelfleet.domain.errors import AlreadyExists, NotFound
from modelfleet.store import Database
from modelfleet.store.monitoring import DataAssetStore, ScheduleStore

pytestmark = pytest.mark.databases


@pytest.fixture
def store_db(database, request, tmp_path):
    url = (request.getfixturevalue("postgres_server").create_database() if database == "postgresql"
           else f"sqlite:///{tmp_path / 'workspace.db'}")
    d = Database(url)
    yield d
    d.close()


def _asset(store: DataAssetStore, name: str, version: str | None):
    return store.add(name, version, type="uri_file", sha256="0" * 64, path="ref.csv",
                     files=[{"path": "ref.csv", "size": 3, "sha256": "1" * 64}], description="", tags={"k": "v"})


def test_data_asset_versions_are_numbered_immutable_and_the_latest_is_the_newest(store_db):
    store = DataAssetStore(store_db)
    assert [_asset(store, "ref", v).version for v in (None, "2024-01", None)] == ["1", "2024-01", "2"]
    with pytest.raises(AlreadyExists, match="ref:1 already exists"):
        _asset(store, "ref", "1")
    assert store.get("ref").version == "2" and store.get("ref", "2024-01").files[0]["path"] == "ref.csv"
    assert store.get("ref", "1").tags == {"k": "v"}
    _asset(store, "other", None)
    assert [(a.name, a.version) for a in store.list()] == [("other", "1"), ("ref", "1"), ("ref", "2024-01"),
                                                          ("ref", "2")]
    with pytest.raises(NotFound, match="data asset ref:9 not found"):
        store.get("ref", "9")


def test_schedules_are_due_in_order_and_their_runs_go_with_them(store_db):
    store = ScheduleStore(store_db)
    store.put("late", {"name": "late"}, "2030-01-02T00:00:00.000Z")
    store.put("early", {"name": "early"}, "2030-01-01T00:00:00.000Z")
    assert [s.name for s in store.due("2030-01-03T00:00:00.000Z")] == ["early", "late"]
    assert store.due("2029-12-31T00:00:00.000Z") == []
    store.set_enabled("late", False, None)
    store.put("late", {"name": "late", "changed": True}, "2030-01-01T00:00:00.000Z")   # stays disabled
    assert store.get("late").spec["changed"] and store.get("late").next_run_at is None
    store.set_next("late", "2030-01-01T00:00:00.000Z")                                # disabled: ignored
    assert [s.name for s in store.due("2030-01-03T00:00:00.000Z")] == ["early"]
    results = [{"signal": "drift", "feature": "a", "metric": "jensen_shannon_distance", "value": 0.2,
                "threshold": 0.1, "passed": False}]
    ids = [store.add_run("early", started_at=f"2030-01-0{i}T00:00:00.000Z", status=status, error=None,
                         results=results, window_start="w", window_end="w")
           for i, status in ((1, "passed"), (2, "breached"))]
    store.add_run("late", started_at="2030-01-01T00:00:00.000Z", status="failed", error="no data", results=[],
                  window_start="w", window_end="w")
    assert [r["id"] for r in store.runs("early")] == ids and store.runs("early", 1)[0]["results"] == results
    assert {r["schedule"]: r["status"] for r in store.latest_runs()} == {"early": "breached", "late": "failed"}
    store.delete("early")
    assert store.runs("early") == [] and [s.name for s in store.list()] == ["late"]
    for call in (lambda: store.get("early"), lambda: store.delete("early"),
                 lambda: store.set_enabled("early", True, None)):
        with pytest.raises(NotFound, match="schedule 'early' not found"):
            call()
