"""The collection writer's uploader (datastores/collected.py) against an in-memory store: closed
windows only, under the workspace's names; a failing store counted, the files kept and sent once
it is back; files a previous writer left are found and sent at once; a stopping writer sends its
open windows' files; expired windows leave the store."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from modelfleet.collection.windows import window_parts
from modelfleet.datastores import collected
from modelfleet.domain.errors import DatastoreError

from ...helpers import wait_until


class Store:
    def __init__(self):
        self.blobs: dict[str, bytes] = {}
        self.down = False
        self.listed: list[str] = []

    def put_file(self, name, path):
        if self.down:
            raise DatastoreError("datastore 'ws': cannot reach http://127.0.0.1:1 to upload")
        self.blobs[name] = path.read_bytes()

    def names(self, prefix):
        self.listed.append(prefix)
        return [n for n in self.blobs if n.startswith(prefix)]

    def delete_name(self, name):
        self.blobs.pop(name, None)

    def get_file(self, name, dest):
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(self.blobs[name])


class Uploader(collected.Uploader):
    store_given = None

    def _open(self):
        return self.store_given


@pytest.fixture
def uploader(tmp_path):
    made = []

    def make(store):
        up = Uploader(tmp_path)
        up.store_given = store
        made.append(up)
        return up
    yield make
    for up in made:
        up.close()


def part(root, t: float, rate: str, name: str = "part-1.parquet"):
    folder = root.joinpath("modelDataCollector", "ep", "blue", "model_inputs", *window_parts(t, rate))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(name.encode())
    return folder / name


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    monkeypatch.setattr(collected, "EVERY_S", 0.02)
    monkeypatch.setattr(collected, "GRACE_S", 0.0)


def test_closed_windows_go_up_under_their_names_open_ones_wait(tmp_path, uploader):
    store = Store()
    old = part(tmp_path, time.time() - 7200, "hour")
    now = part(tmp_path, time.time(), "day")   # today's window: still open
    up = uploader(store)
    up.written([old, now])
    name = old.relative_to(tmp_path).as_posix()
    wait_until(lambda: name in store.blobs, timeout=10)
    assert collected.marker(old).exists() and old.exists()   # kept: monitors read the local copy first
    assert up.counts() == [("ep", "blue", 1, 0)]
    assert now.relative_to(tmp_path).as_posix() not in store.blobs and not collected.marker(now).exists()


def test_a_store_that_is_down_counts_failures_keeps_the_files_and_gets_them_later(tmp_path, uploader):
    store = Store()
    store.down = True
    files = [part(tmp_path, time.time() - 7200 - i * 3600, "hour") for i in range(3)]
    up = uploader(store)
    up.written(files)
    failed = []
    wait_until(lambda: failed.extend(up.counts()) or sum(f for *_, f in failed) >= 1, timeout=30)
    assert store.blobs == {} and all(f.exists() and not collected.marker(f).exists() for f in files)
    store.down = False
    wait_until(lambda: len(store.blobs) == 3, timeout=30)   # tried again: the backoff is still short
    assert all(collected.marker(f).exists() for f in files)


def test_a_new_writer_finds_the_files_left_unuploaded_and_expired_windows_leave_the_store(tmp_path, uploader):
    store = Store()
    left = part(tmp_path, time.time() - 7200, "hour")
    done = part(tmp_path, time.time() - 7200, "hour", "part-2.parquet")
    collected.marker(done).touch()
    expired = "modelDataCollector/ep/blue/model_inputs/2020/01/02/03/part-0.parquet"
    store.blobs[expired] = b"x"
    up = uploader(store)
    wait_until(lambda: left.relative_to(tmp_path).as_posix() in store.blobs, timeout=10)
    assert done.relative_to(tmp_path).as_posix() not in store.blobs   # uploaded by a writer before
    up.prune("ep", "blue", 30)
    wait_until(lambda: expired not in store.blobs, timeout=10)
    assert len(store.blobs) == 1


def test_a_stopping_writer_uploads_its_open_windows_and_a_new_one_takes_what_was_left_at_once(tmp_path, uploader):
    store = Store()
    left = part(tmp_path, time.time(), "day", "part-left.parquet")   # an earlier writer's, today's window
    up = uploader(store)
    wait_until(lambda: left.relative_to(tmp_path).as_posix() in store.blobs, timeout=10)   # no window to wait for
    mine, old = part(tmp_path, time.time(), "day"), part(tmp_path, time.time() - 7200, "hour")
    up.written([mine, old])
    wait_until(lambda: old.relative_to(tmp_path).as_posix() in store.blobs, timeout=10)   # a pass went by
    assert mine.relative_to(tmp_path).as_posix() not in store.blobs   # this writer's open window waits
    up.finish(timeout=10)
    assert mine.relative_to(tmp_path).as_posix() in store.blobs and collected.marker(mine).exists()


def test_a_stopping_writer_with_the_store_down_leaves_its_files_for_the_next(tmp_path, uploader):
    store = Store()
    store.down = True
    up = uploader(store)
    mine = part(tmp_path, time.time(), "day")
    up.written([mine])
    up.finish(timeout=10)
    assert up.counts() == [("ep", "blue", 0, 1)] and mine.exists() and not collected.marker(mine).exists()
    store.down = False
    uploader(store)   # the next writer
    wait_until(lambda: mine.relative_to(tmp_path).as_posix() in store.blobs, timeout=10)


def test_window_of_reads_azures_layout():
    assert collected.window_of(tuple("modelDataCollector/e/d/c/2026/12/06/13/f.parquet".split("/"))) == (
        dt.datetime(2026, 12, 6, 13, tzinfo=dt.timezone.utc), dt.datetime(2026, 12, 6, 14, tzinfo=dt.timezone.utc))
    assert collected.window_of(tuple("modelDataCollector/e/d/c/2026/12/06/f.parquet".split("/")))[1].day == 7
    assert collected.window_of(tuple("blobs/abc".split("/"))) is None


def test_missing_windows_are_fetched_from_the_store(tmp_path):
    store = Store()
    prefix = "modelDataCollector/ep/blue/model_inputs"
    store.blobs[f"{prefix}/2026/12/06/13/part-1.parquet"] = b"a"
    store.blobs[f"{prefix}/2026/12/06/13/part-2.parquet"] = b"b"
    local = tmp_path / "ws" / prefix
    (local / "2026/12/06/13").mkdir(parents=True)
    (local / "2026/12/06/13/part-1.parquet").write_bytes(b"a")
    got = collected.fetch_missing(store, prefix, local, tmp_path / "fetched")
    assert got == [tmp_path / "fetched/2026/12/06/13/part-2.parquet"] and got[0].read_bytes() == b"b"


def test_only_the_windows_of_a_span_are_listed_and_fetched(tmp_path):
    store = Store()
    prefix = "modelDataCollector/ep/blue/model_inputs"
    for window in ("2026/12/01/10", "2026/12/05/23", "2026/12/06/00", "2026/12/06/13", "2026/12/06/14", "2026/12/07"):
        store.blobs[f"{prefix}/{window}/part-1.parquet"] = window.encode()
    start = dt.datetime(2026, 12, 5, 23, 30, tzinfo=dt.timezone.utc)
    end = dt.datetime(2026, 12, 6, 14, 0, tzinfo=dt.timezone.utc)
    got = collected.fetch_missing(store, prefix, tmp_path / "ws" / prefix, tmp_path / "fetched", start, end)
    assert sorted(p.read_bytes().decode() for p in got) == ["2026/12/05/23", "2026/12/06/00", "2026/12/06/13"]
    assert store.listed == [f"{prefix}/2026/12/05/", f"{prefix}/2026/12/06/"]   # two days listed, not every window
    assert len(collected.fetch_missing(store, prefix, tmp_path / "ws" / prefix, tmp_path / "all")) == 6
