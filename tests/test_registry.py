"""Model registry on real SQLite files: versions, labels, archive, delete, concurrency, atomicity."""

from __future__ import annotations

import multiprocessing as mp
import os
import subprocess
import sys
from pathlib import Path

import pytest

from modelfleet.domain.errors import AlreadyExists, InvalidInput, NotFound
from modelfleet.assets.models import detect_type

from .helpers import wait_until


def _file(tmp_path: Path, name: str, content: bytes) -> Path:
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(content)
    return p


def test_register_auto_versions_and_any_string_versions(api_fleet, inprocess, tmp_path):
    a = api_fleet.models.register("m", _file(tmp_path, "a/model.pkl", b"one"))
    b = api_fleet.models.register("m", _file(tmp_path, "b/model.pkl", b"two"))
    c = api_fleet.models.register("m", _file(tmp_path, "c/model.pkl", b"three"), "2024-12-01")
    d = api_fleet.models.register("m", _file(tmp_path, "d/model.pkl", b"four"))
    assert [a.version, b.version, c.version, d.version] == ["1", "2", "2024-12-01", "3"]
    assert a.type == "sklearn" and a.files[0]["path"] == "model.pkl"
    assert api_fleet.models.get("m").version == "3"  # latest = newest registration
    assert api_fleet.models.resolve("m:2024-12-01").sha256 == c.sha256


def test_versions_are_immutable_and_exist_ok_needs_same_content(api_fleet, inprocess, tmp_path):
    f1 = _file(tmp_path, "x/model.onnx", b"abc")
    m = api_fleet.models.register("m", f1, "v1")
    assert m.type == "onnx"
    with pytest.raises(AlreadyExists, match="m:v1"):
        api_fleet.models.register("m", f1, "v1")
    assert api_fleet.models.register("m", f1, "v1", exist_ok=True).sha256 == m.sha256
    with pytest.raises(AlreadyExists, match="different content"):
        api_fleet.models.register("m", _file(tmp_path, "y/model.onnx", b"changed"), "v1", exist_ok=True)


def test_directory_keeps_its_name_and_type_detection(api_fleet, inprocess, tmp_path):
    d = tmp_path / "mlmodel_dir"
    _file(d, "MLmodel", b"flavors: {}")
    _file(d, "sub/model.pkl", b"x")
    m = api_fleet.models.register("ml", d)
    assert m.type == "mlflow"
    assert sorted(f["path"] for f in m.files) == ["mlmodel_dir/MLmodel", "mlmodel_dir/sub/model.pkl"]
    assert detect_type([{"path": "a/readme.txt"}]) == "custom"


def test_labels_archive_restore_update(api_fleet, inprocess, tmp_path):
    v1 = api_fleet.models.register("m", _file(tmp_path, "1/model.pkl", b"1"), tags={"team": "a"})
    v2 = api_fleet.models.register("m", _file(tmp_path, "2/model.pkl", b"2"))
    api_fleet.models.label("m", "1", "champion")
    assert api_fleet.models.resolve("m@champion").version == "1"
    assert api_fleet.models.get("m", label="champion").labels == ["champion"]
    with pytest.raises(InvalidInput, match="latest"):
        api_fleet.models.label("m", "1", "latest")
    api_fleet.models.archive("m", v2.version)
    assert [m.version for m in api_fleet.models.list("m")] == ["1"]
    assert len(api_fleet.models.list("m", include_archived=True)) == 2
    assert api_fleet.models.get("m").version == "1"          # latest skips archived
    assert api_fleet.models.resolve("m:2").archived            # still resolvable explicitly
    api_fleet.models.restore("m", "2")
    assert api_fleet.models.get("m").version == "2"
    u = api_fleet.models.update("m", "1", description="new", tags={"x": "y"}, remove_tags=["team"])
    assert u.description == "new" and u.tags == {"x": "y"}
    assert v1.sha256 == u.sha256


def test_delete_and_download(api_fleet, inprocess, tmp_path):
    m = api_fleet.models.register("m", _file(tmp_path, "1/model.pkl", b"payload"))
    out = api_fleet.models.download("m", "1", download_path=tmp_path / "dl")
    assert (out / "model.pkl").read_bytes() == b"payload"
    api_fleet.models.delete("m", "1")
    with pytest.raises(NotFound):
        api_fleet.models.resolve("m:1")
    assert not (inprocess.ws.artifacts / "models" / m.sha256).exists()


@pytest.mark.parametrize("bad", ["", "-x", "a b", "x" * 65, "../etc", "a/b", "é"])
def test_bad_names_are_refused_with_the_rule(api_fleet, inprocess, tmp_path, bad):
    with pytest.raises(InvalidInput, match="letters, digits"):
        api_fleet.models.register(bad, _file(tmp_path, "m.pkl", b"1"))
    assert api_fleet.models.list() == []


def test_missing_path_changes_nothing(api_fleet, inprocess, tmp_path):
    with pytest.raises(InvalidInput, match="does not exist"):
        api_fleet.models.register("m", tmp_path / "nope")
    assert api_fleet.models.list() == []


def test_corrupted_artifact_is_detected(api_fleet, inprocess, tmp_path):
    from modelfleet.domain.errors import IntegrityError
    m = api_fleet.models.register("m", _file(tmp_path, "1/model.pkl", b"good bytes"))
    stored = inprocess.ws.artifacts / "models" / m.sha256 / "model.pkl"
    os.chmod(stored, 0o644)
    stored.write_bytes(b"evil bytes")
    with pytest.raises(IntegrityError, match="sha256 mismatch"):
        api_fleet.models.verified_path(m)


def _register_many(home: str, src: str, n: int, q) -> None:
    os.environ["FLEET_HOME"] = home
    from modelfleet import Fleet
    f = Fleet()
    out = []
    try:
        for _ in range(n):
            out.append(f.models.register("shared", src).version)
        q.put(("ok", out))
    except Exception as e:  # reported to the parent, which fails the test
        q.put(("error", repr(e)))


@pytest.mark.slow
def test_concurrent_registration_from_processes(fleet_home, tmp_path):
    """8 processes x 25 registrations: 200 distinct auto versions and no error."""
    src = _file(tmp_path, "model.pkl", b"same content is fine")
    from modelfleet import Fleet
    Fleet().close()  # create the default workspace first
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_register_many, args=(str(fleet_home), str(src), 25, q)) for _ in range(8)]
    for p in procs:
        p.start()
    results = [q.get(timeout=240) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    errors = [r for r in results if r[0] != "ok"]
    assert not errors, errors
    versions = [v for _, vs in results for v in vs]
    assert len(versions) == 200 and len(set(versions)) == 200
    assert sorted(int(v) for v in versions) == list(range(1, 201))
    f = Fleet()
    assert len(f.models.list("shared")) == 200
    f.close()


@pytest.mark.slow
def test_killed_mid_copy_leaves_no_half_version(fleet_home, tmp_path):
    """SIGKILL a register while it copies a large file: no version, and the next register works."""
    big = tmp_path / "big"
    big.mkdir()
    for i in range(40):
        (big / f"part{i}.bin").write_bytes(os.urandom(1 << 20))
    env = {**os.environ, "FLEET_HOME": str(fleet_home)}
    code = ("import sys; from modelfleet import Fleet; "
            "Fleet().models.register('big', sys.argv[1])")
    proc = subprocess.Popen([sys.executable, "-c", code, str(big)], env=env)
    staging = fleet_home / "workspaces" / "default" / "artifacts" / "tmp"
    try:
        wait_until(lambda: staging.is_dir() and any(staging.rglob("part*.bin")), timeout=60, interval=0.005)
    finally:
        proc.kill()
        proc.wait()
    from modelfleet import Fleet
    f = Fleet()
    assert f.models.list("big") == []
    assert not list((fleet_home / "workspaces" / "default" / "artifacts").glob("models/*"))
    m = f.models.register("big", big)
    assert m.version == "1" and len(m.files) == 40
    f.close()
