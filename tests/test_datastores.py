"""Datastores against a real Azure Blob emulator (Azurite on 127.0.0.1) and real files:
round trips, streamed and resumable uploads, refused bytes, a stopped store, wrong
credentials, and the node cache shared by several processes."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from modelfleet.datastores import NodeCache, open_datastore, parse, parse_document
from modelfleet.datastores.azure_blob import BLOCK, CONCURRENCY
from modelfleet.domain.errors import DatastoreError, IntegrityError, NotFound

from .azurite import model_file, running

pytestmark = pytest.mark.slow
CHILD = Path(__file__).with_name("datastore_child.py")
MiB = 1 << 20


@pytest.fixture(scope="module")
def azurite(tmp_path_factory):
    with running(tmp_path_factory.mktemp("azurite")) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def doc(azurite):
    d = azurite.document()
    open_datastore(parse_document(d)).ensure_container()
    return d


@pytest.fixture
def store(doc):
    return open_datastore(parse_document(doc))


def child(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(CHILD), *args], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(CHILD.parents[1] / "src")}, **kw)


def test_azurite_listens_only_on_loopback(azurite):
    pids = {azurite.proc.pid, *(c.pid for c in psutil.Process(azurite.proc.pid).children(recursive=True))}
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    mine = [line.split()[3] for line in out.splitlines() if any(f"pid={p}," in line for p in pids)]
    assert mine and all(addr.startswith("127.0.0.1:") for addr in mine), mine


@pytest.fixture(params=["local", "azure_blob"])
def any_store(request, tmp_path):
    """Each implementation, for the promises they all keep."""
    if request.param == "local":
        return open_datastore(tmp_path / "artifacts")
    return request.getfixturevalue("store")


def test_round_trip_exists_delete(any_store, tmp_path):
    data = os.urandom(3 * MiB + 17)
    sha = hashlib.sha256(data).hexdigest()
    assert not any_store.exists(sha)
    assert any_store.put(sha, io.BytesIO(data)) == len(data)
    assert any_store.exists(sha) and any_store.put(sha, io.BytesIO(data)) == 0  # stored once
    any_store.get(sha, tmp_path / "out" / "m.bin")
    assert (tmp_path / "out" / "m.bin").read_bytes() == data
    any_store.delete(sha)
    any_store.delete(sha)
    assert not any_store.exists(sha)
    with pytest.raises(NotFound, match="not found"):
        any_store.get(sha, tmp_path / "gone.bin")
    assert not (tmp_path / "gone.bin").exists()


def test_read_path_from_an_azureml_uri(store, tmp_path):
    for name, body in [("m1/model.pkl", b"model"), ("m1/conf/settings.json", b"{}"), ("m2/other", b"x")]:
        store.container.upload_blob(f"uploads/{name}", body, overwrite=True)
    where = parse("azureml://datastores/models_store/paths/uploads/m1/")
    assert where.datastore == store.name
    written = store.read_path(where.path, tmp_path / "got")
    assert sorted(p.relative_to(tmp_path / "got").as_posix() for p in written) == ["m1/conf/settings.json",
                                                                                  "m1/model.pkl"]
    assert store.read_path("uploads/m2/other", tmp_path / "one")[0].read_bytes() == b"x"
    with pytest.raises(NotFound, match="datastore 'models_store': path 'uploads/none' not found"):
        store.read_path("uploads/none", tmp_path / "x")


def test_a_large_upload_and_download_stream_in_bounded_memory(doc, tmp_path):
    def report(*args: str) -> dict:
        proc = child(*args)
        out, _ = proc.communicate(timeout=240)
        assert proc.returncode == 0
        return json.loads(out.splitlines()[-1])

    sizes = {"small": 8 * MiB, "big": 384 * MiB}
    shas = {k: model_file(tmp_path / k, n) for k, n in sizes.items()}
    put = {k: report("put", json.dumps(doc), str(tmp_path / k), shas[k]) for k in sizes}
    get = {k: report("get", json.dumps(doc), str(tmp_path / f"{k}.back"), shas[k]) for k in sizes}
    assert put["big"]["sent"] == sizes["big"] == os.path.getsize(tmp_path / "big.back")  # and checked by get
    for peaks in (put, get):
        # 48 times the bytes cost the process at most the blocks in flight more (a block may be
        # held up to three times: as read, in its request or response, the first range kept), never the file
        # (compared with the small file's peak, not as a bound of its own: what the interpreter and
        # its imports take varies with the machine and its load; 450 MB was seen in a full run)
        assert peaks["big"]["peak_rss"] - peaks["small"]["peak_rss"] < 3 * (CONCURRENCY + 1) * BLOCK, peaks


def test_an_upload_killed_half_way_leaves_no_blob_and_resumes(doc, store, tmp_path):
    size = 256 * MiB
    sha = model_file(tmp_path / "model.bin", size)
    proc = child("put", json.dumps(doc), str(tmp_path / "model.bin"), sha, str(size // 2))
    assert proc.stdout.readline().strip() == "half"
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert not store.exists(sha)
    assert f"blobs/{sha}" not in [b.name for b in store.container.list_blobs(name_starts_with="blobs/")]
    staged = store.container.get_blob_client(f"blobs/{sha}").get_block_list("uncommitted")[1]
    assert staged  # what the killed upload sent is kept for the next run
    with open(tmp_path / "model.bin", "rb") as f:
        sent = store.put(sha, f)
    assert sent <= size - sum(b.size for b in staged)  # only the blocks not yet staged
    store.get(sha, tmp_path / "back.bin")
    assert hashlib.sha256((tmp_path / "back.bin").read_bytes()).hexdigest() == sha
    store.delete(sha)


def test_bytes_that_do_not_match_their_sha256_are_refused_and_not_cached(store, tmp_path):
    data = os.urandom(2 * MiB)
    sha = hashlib.sha256(data).hexdigest()
    with pytest.raises(IntegrityError, match="sha256 mismatch"):
        store.put(sha, io.BytesIO(data[:-1] + b"!"))
    assert not store.exists(sha)
    store.container.upload_blob(f"blobs/{sha}", b"not the model" + data[13:], overwrite=True)  # changed in the store
    with pytest.raises(IntegrityError, match="models_store.*sha256 mismatch"):
        store.get(sha, tmp_path / "m.bin")
    assert not (tmp_path / "m.bin").exists() and list(tmp_path.iterdir()) == []
    cache = NodeCache(tmp_path / "cache", max_bytes=64 * MiB)
    with pytest.raises(IntegrityError):
        cache.lease(sha, store)
    assert not cache.has(sha) and list(cache.tmp.iterdir()) == []
    store.delete(sha)


def test_wrong_credentials_are_one_line_naming_the_datastore(azurite, doc):
    for creds in ({"account_key": "d3Jvbmcga2V5" * 7}, {"sas_token": "sv=2024-01-01&sig=bm90IGl0"}):
        bad = open_datastore(parse_document(azurite.document(**creds)))
        with pytest.raises(DatastoreError) as e:
            bad.put("0" * 64, io.BytesIO(b"x"))
        message = str(e.value)
        assert message.startswith("datastore 'models_store': ") and "\n" not in message
        assert "refused" in message and creds.popitem()[1] not in message


def test_concurrent_fetches_of_one_blob_download_it_once(doc, store, tmp_path):
    data = os.urandom(48 * MiB)
    sha = hashlib.sha256(data).hexdigest()
    store.put(sha, io.BytesIO(data))
    procs = [child("lease", json.dumps(doc), str(tmp_path / "cache"), sha) for _ in range(4)]
    leases = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4
    assert sum(lease["fetched"] for lease in leases) == 1
    assert Path(leases[0]["path"]).read_bytes() == data and list((tmp_path / "cache" / "tmp").iterdir()) == []


def test_a_stopped_store_fails_puts_in_one_line_while_the_cache_keeps_serving(azurite, doc, store, tmp_path):
    data = os.urandom(4 * MiB)
    sha = hashlib.sha256(data).hexdigest()
    store.put(sha, io.BytesIO(data))
    cache = NodeCache(tmp_path / "cache", max_bytes=64 * MiB)
    cache.lease(sha, store).release()
    azurite.stop()
    try:
        with cache.lease(sha, store) as lease:  # a replica start on this node reads nothing remote
            assert not lease.fetched and lease.path.read_bytes() == data
        other = os.urandom(MiB)
        with pytest.raises(DatastoreError) as e:
            store.put(hashlib.sha256(other).hexdigest(), io.BytesIO(other))
        assert str(e.value).startswith("datastore 'models_store': cannot reach ") and "\n" not in str(e.value)
        sas = "sv=2024-01-01&sig=c2VjcmV0LXNpZ25hdHVyZQ"
        with pytest.raises(DatastoreError) as e:
            open_datastore(parse_document(azurite.document(sas_token=sas))).get(sha, tmp_path / "x")
        assert "cannot reach" in str(e.value) and "c2VjcmV0" not in str(e.value)
    finally:
        azurite.start()
    assert store.exists(sha)
