"""A snapshot's folder built from the node cache: links to checked blobs, pinned while held,
built again when an evicted blob left a link dangling."""

import hashlib
import io

import pytest

from modelfleet.datastores import NodeCache, open_datastore, trees
from modelfleet.domain.errors import IntegrityError


def put(store, data: bytes) -> dict:
    sha = hashlib.sha256(data).hexdigest()
    store.put(sha, io.BytesIO(data))
    return {"sha256": sha, "size": len(data)}


@pytest.fixture
def store(tmp_path):
    return open_datastore(tmp_path / "artifacts")


def test_a_tree_links_every_file_to_its_cached_blob_and_a_second_build_reads_nothing(store, tmp_path):
    files = [{"path": "m/model.pkl", **put(store, b"m" * 4096)}, {"path": "m/conf/a.json", **put(store, b"{}")},
             {"path": "m/copy.pkl", **put(store, b"m" * 4096)}]   # equal files: one blob
    cache = NodeCache(tmp_path / "cache", max_bytes=1 << 20)
    first = trees.build(cache, store, "models", "a" * 64, files)
    assert first.fetched_bytes == 4096 + 2
    assert (first.path / "m" / "model.pkl").read_bytes() == b"m" * 4096
    assert (first.path / "m" / "conf" / "a.json").resolve() == cache.path(files[1]["sha256"])
    first.release()
    second = trees.build(cache, store, "models", "a" * 64, files)
    assert second.fetched_bytes == 0 and second.path == first.path
    second.release()


def test_a_held_tree_pins_its_blobs_and_an_evicted_one_is_fetched_and_linked_again(store, tmp_path):
    big = [{"path": "m/w.bin", **put(store, b"w" * 600_000)}]
    other = [{"path": "o/w.bin", **put(store, b"o" * 600_000)}]
    cache = NodeCache(tmp_path / "cache", max_bytes=1_000_000)
    held = trees.build(cache, store, "models", "b" * 64, big)
    with pytest.raises(Exception, match="is full"):   # the held tree's blob is never evicted
        trees.build(cache, store, "models", "c" * 64, other)
    held.release()
    trees.build(cache, store, "models", "c" * 64, other).release()   # now it may go
    assert not cache.has(big[0]["sha256"])
    again = trees.build(cache, store, "models", "b" * 64, big)
    assert again.fetched_bytes == 600_000 and (again.path / "m" / "w.bin").read_bytes() == b"w" * 600_000
    again.release()


def test_a_path_leaving_the_tree_is_refused(store, tmp_path):
    cache = NodeCache(tmp_path / "cache", max_bytes=1 << 20)
    with pytest.raises(IntegrityError, match="leaves its folder"):
        trees.build(cache, store, "models", "d" * 64, [{"path": "../x", **put(store, b"x")}])
