"""The local folder datastore and the node cache over it (one process: pins, LRU, checks)."""

import hashlib
import io
import os
import time

import pytest

from modelfleet.datastores import LocalDatastore, NodeCache, open_datastore
from modelfleet.domain.errors import IntegrityError, InvalidInput, NotFound, StorageError


def blob(n: int, seed: int = 0) -> tuple[bytes, str]:
    data = bytes([seed % 256]) * n
    return data, hashlib.sha256(data).hexdigest()


@pytest.fixture
def store(tmp_path):
    return open_datastore(tmp_path / "artifacts")


def test_bytes_that_do_not_match_their_name_are_refused_and_leave_nothing(store, tmp_path):
    data, sha = blob(1 << 20)
    with pytest.raises(IntegrityError, match="sha256 mismatch"):
        store.put(sha, io.BytesIO(data + b"x"))
    assert not store.exists(sha) and list((tmp_path / "artifacts" / "tmp").iterdir()) == []
    with pytest.raises(InvalidInput, match="is not a sha256"):
        store.put("../etc/passwd", io.BytesIO(data))


def test_read_path_copies_a_folder_keeping_its_name_and_stays_inside(store, tmp_path):
    src = tmp_path / "artifacts" / "uploads" / "m1"
    (src / "sub").mkdir(parents=True)
    (src / "model.pkl").write_bytes(b"m")
    (src / "sub" / "conf.json").write_bytes(b"{}")
    written = store.read_path("uploads/m1", tmp_path / "got")
    assert sorted(p.relative_to(tmp_path / "got").as_posix() for p in written) == ["m1/model.pkl", "m1/sub/conf.json"]
    with pytest.raises(InvalidInput, match="outside the datastore"):
        store.read_path("../..", tmp_path / "x")
    with pytest.raises(NotFound, match="'uploads/none' not found"):
        store.read_path("uploads/none", tmp_path / "x")


def test_cache_fetches_once_then_serves_without_the_store(store, tmp_path):
    data, sha = blob(2 << 20, 1)
    store.put(sha, io.BytesIO(data))
    cache = NodeCache(tmp_path / "cache", max_bytes=10 << 20)
    with cache.lease(sha, store) as first:
        assert first.fetched and first.path.read_bytes() == data
    store.delete(sha)  # gone from the store: the node's copy is what a replica start reads
    with cache.lease(sha, store) as second:
        assert not second.fetched and second.path.read_bytes() == data
    assert os.stat(second.path).st_mode & 0o222 == 0  # read-only: nobody changes a cached blob


def test_a_mismatching_blob_is_not_cached(store, tmp_path):
    data, sha = blob(1 << 20, 2)
    store.put(sha, io.BytesIO(data))
    stored = tmp_path / "artifacts" / "blobs" / sha
    os.chmod(stored, 0o644)
    stored.write_bytes(b"tampered" + data[8:])  # the store's bytes changed after the put
    cache = NodeCache(tmp_path / "cache", max_bytes=10 << 20)
    with pytest.raises(IntegrityError, match="sha256 mismatch"):
        cache.lease(sha, store)
    assert not cache.has(sha) and list(cache.tmp.iterdir()) == []


def test_eviction_takes_the_least_recently_used_and_never_a_pinned_blob(store, tmp_path):
    blobs = [blob(1 << 20, i) for i in range(5)]
    for data, sha in blobs:
        store.put(sha, io.BytesIO(data))
    cache = NodeCache(tmp_path / "cache", max_bytes=3 << 20)
    pinned = cache.lease(blobs[0][1], store)  # held, like a replica that loaded it
    for i, (_, sha) in enumerate(blobs[1:3], 1):
        cache.lease(sha, store).release()
        os.utime(cache.path(sha), (time.time() - 100 + i, time.time() - 100 + i))  # 1 older than 2
    os.utime(pinned.path, (time.time() - 1000, time.time() - 1000))  # the oldest of all, but pinned
    cache.lease(blobs[3][1], store).release()
    assert [cache.has(sha) for _, sha in blobs] == [True, False, True, True, False]
    assert cache.size() <= cache.max_bytes
    cache.lease(blobs[4][1], store).release()
    assert [cache.has(sha) for _, sha in blobs] == [True, False, False, True, True]


def test_a_cache_full_of_pinned_blobs_refuses_in_one_line(store, tmp_path):
    blobs = [blob(1 << 20, i) for i in range(3)]
    for data, sha in blobs:
        store.put(sha, io.BytesIO(data))
    cache = NodeCache(tmp_path / "cache", max_bytes=2 << 20)
    held = [cache.lease(sha, store) for _, sha in blobs[:2]]
    with pytest.raises(StorageError, match=r"node cache .* is full: .* pinned by replicas in use"):
        cache.lease(blobs[2][1], store)
    assert not cache.has(blobs[2][1]) and list(cache.tmp.iterdir()) == []
    held[0].release()
    cache.lease(blobs[2][1], store).release()
    assert not cache.has(blobs[0][1]) and cache.has(blobs[1][1])


def test_sweep_removes_downloads_left_by_a_crash_but_not_one_under_way(tmp_path):
    import fcntl
    cache = NodeCache(tmp_path / "cache", max_bytes=1 << 20)
    left, busy = "a" * 64, "b" * 64
    (cache.tmp / f"{left}.1234abcd").write_bytes(b"partial")
    (cache.tmp / f"{busy}.5678abcd").write_bytes(b"partial")
    with open(cache.locks / busy, "a") as lock:  # another fetcher holds this one
        fcntl.flock(lock, fcntl.LOCK_EX)
        cache.sweep_tmp()
    assert sorted(p.name for p in cache.tmp.iterdir()) == [f"{busy}.5678abcd"]
