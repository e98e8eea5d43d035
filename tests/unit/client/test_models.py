"""`api_fleet.models` against the real control API in process: register (upload checked by sha256),
resolve, list, update, label, archive, download (each file checked), delete, and their errors."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from modelfleet.files.digests import content_digest
from modelfleet.domain.errors import AlreadyExists, IntegrityError, InvalidInput, NotFound, Unauthorized


@pytest.fixture
def model_dir(tmp_path):
    d = tmp_path / "src" / "iris"
    (d / "sub").mkdir(parents=True)
    (d / "model.joblib").write_bytes(b"weights " * 1000)
    (d / "sub" / "notes.txt").write_text("trained on iris")
    return d


def test_register_uploads_the_files_once_and_the_server_stores_them_by_sha256(api_fleet, inprocess, model_dir):
    sha, files = content_digest(model_dir)
    m = api_fleet.models.register("iris", model_dir, "1", description="first", tags={"team": "risk"})
    assert (m.ref, m.sha256, m.files, m.type, m.size) == ("iris:1", sha, files, "sklearn", 8000 + 15)
    stored = inprocess.ws.artifacts / "models" / sha / "iris"
    assert (stored / "sub" / "notes.txt").read_text() == "trained on iris"
    again = api_fleet.models.register("iris", model_dir, "1", exist_ok=True)
    assert again.ref == "iris:1"
    assert api_fleet.models.register("iris", model_dir, reuse_same_content=True).ref == "iris:1"
    assert api_fleet.models.register("iris", model_dir).version == "2"
    with pytest.raises(AlreadyExists, match="iris:1 already exists"):
        api_fleet.models.register("iris", model_dir, "1")


def test_get_list_update_label_archive_restore_and_delete(api_fleet, model_dir):
    api_fleet.models.register("iris", model_dir, "1")
    api_fleet.models.register("iris", model_dir, "2")
    assert api_fleet.models.get("iris").version == "2"
    assert api_fleet.models.resolve("azureml:iris:1").version == "1"
    assert api_fleet.models.update("iris", "1", description="d", tags={"a": "b"}).tags == {"a": "b"}
    assert api_fleet.models.update("iris", "1", remove_tags=["a"]).tags == {}
    assert "champion" in api_fleet.models.label("iris", "1", "champion").labels
    assert api_fleet.models.get("iris", label="champion").version == "1"
    assert api_fleet.models.archive("iris", "2").archived
    assert [m.version for m in api_fleet.models.list("iris")] == ["1"]
    assert [m.version for m in api_fleet.models.list("iris", include_archived=True)] == ["1", "2"]
    assert not api_fleet.models.restore("iris", "2").archived
    api_fleet.models.delete("iris", "2")
    with pytest.raises(NotFound, match="iris:2"):
        api_fleet.models.get("iris", "2")
    with pytest.raises(InvalidInput, match="not both"):
        api_fleet.models.get("iris", "1", "champion")
    with pytest.raises(InvalidInput, match="label 'latest'"):
        api_fleet.models.label("iris", "1", "latest")
    with pytest.raises(InvalidInput, match="model name"):
        api_fleet.models.register("bad name!", model_dir)
    with pytest.raises(InvalidInput, match="does not exist"):
        api_fleet.models.register("iris", model_dir / "missing")


def test_download_checks_every_file_against_its_sha256(api_fleet, inprocess, model_dir, tmp_path):
    m = api_fleet.models.register("iris", model_dir, "1")
    out = api_fleet.models.download("iris", "1", download_path=tmp_path / "dl")
    assert out == tmp_path / "dl" / "iris"
    assert (out / "iris" / "model.joblib").read_bytes() == b"weights " * 1000
    stored = inprocess.ws.artifacts / "models" / m.sha256 / "iris" / "sub" / "notes.txt"
    stored.chmod(0o644)
    stored.write_text("changed on the server's disk")
    with pytest.raises(IntegrityError, match="sha256 mismatch for iris/sub/notes.txt"):
        api_fleet.models.download("iris", "1", download_path=tmp_path / "dl2")
    assert not (tmp_path / "dl2" / "iris" / "iris" / "sub" / "notes.txt").exists()


def test_an_upload_that_does_not_hash_to_its_name_is_refused_and_nothing_is_stored(api_fleet, inprocess, model_dir):
    from modelfleet.client.transfer import tar_stream
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(IntegrityError, match="not to the sha256 given"):
        api_fleet.request("PUT", f"/api/artifacts/models/{wrong}", content=b"".join(tar_stream(model_dir)))
    assert not (inprocess.ws.artifacts / "models" / wrong).exists()
    with pytest.raises(InvalidInput, match="not a tar stream"):
        api_fleet.request("PUT", f"/api/artifacts/models/{wrong}", content=b"not a tar" * 100)
    with pytest.raises(NotFound, match="upload it first"):
        api_fleet.request("POST", "/api/models/iris/versions", json={"sha256": wrong, "files": [
            {"path": "iris/x", "size": 1, "sha256": wrong}]})
    with pytest.raises(NotFound, match="artifact kind"):
        api_fleet.request("GET", f"/api/artifacts/secrets/{wrong}")
    with pytest.raises(InvalidInput, match="sha256"):   # never a path: a name made of 64 hex digits
        api_fleet.request("POST", "/api/models/iris/versions", json={"sha256": "../..", "files": []})


def test_registering_needs_files_that_describe_the_snapshot(api_fleet, model_dir):
    sha, files = content_digest(model_dir)
    api_fleet.models.register("iris", model_dir, "1")
    files[0] = {**files[0], "size": files[0]["size"] + 1}
    with pytest.raises(InvalidInput, match="does not describe snapshot"):
        api_fleet.request("POST", "/api/models/iris/versions", json={"sha256": sha, "files": files})


def test_a_wrong_token_is_refused_in_one_line(inprocess):
    with inprocess.fleet(token="wrong") as f, pytest.raises(Unauthorized, match="missing, invalid, expired or revoked token"):
        f.models.list()


def test_a_remote_client_needs_a_token(monkeypatch):
    from modelfleet import Fleet
    monkeypatch.setenv("FLEET_SERVER", "http://127.0.0.1:9")
    monkeypatch.delenv("FLEET_TOKEN", raising=False)
    with pytest.raises(InvalidInput, match="FLEET_TOKEN"):
        Fleet()


def test_a_server_that_cannot_be_reached_is_one_error(monkeypatch):
    from modelfleet import Fleet
    from modelfleet.domain.errors import ServerUnavailable
    f = Fleet(server="http://127.0.0.1:9", token="t", transport=httpx.MockTransport(
        lambda request: (_ for _ in ()).throw(httpx.ConnectError("refused"))))
    with pytest.raises(ServerUnavailable, match="cannot reach the server"):
        f.models.list()


def test_an_upload_with_a_path_out_of_its_snapshot_is_refused(api_fleet, inprocess, tmp_path):
    import io
    import tarfile
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"escaped"
        info = tarfile.TarInfo("../evil.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    sha = hashlib.sha256(b"any").hexdigest()
    with pytest.raises(InvalidInput, match="'../evil.txt' is not a file inside the snapshot"):
        api_fleet.request("PUT", f"/api/artifacts/code/{sha}", content=buf.getvalue())
    assert not (inprocess.ws.artifacts / "evil.txt").exists() and not (inprocess.ws.artifacts / "code").exists()
