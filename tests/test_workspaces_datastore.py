"""`fleet workspace create --default-datastore blob.yml` against a real server, with Azurite (the
Azure Storage emulator) on 127.0.0.1: the hosted workspace's uploads land in that container from
its start; a document refused, or a store the server cannot reach, leaves no workspace behind."""

from __future__ import annotations

import json

import pytest

from .azurite import azurite  # noqa: F401  (a fixture)
from .hosting import served  # noqa: F401  (a fixture)
from .helpers import free_port, write
from .test_datastore_serving import blob_yaml, container
from .test_team import _json, _run

pytestmark = pytest.mark.slow


def test_a_hosted_workspace_made_with_a_default_datastore_uploads_there(served, fleet_home, tmp_path, azurite,
                                                                        models_dir):
    admin = served.admin
    folders = fleet_home / "workspaces" / "default" / "workspaces"

    good = blob_yaml(tmp_path / "blob.yml", azurite, "team_store", "team")
    bad = write(tmp_path / "bad.yml", good.read_text().replace("container_name: team", "container_name: Bad_Name"))
    refused = _run(admin, "workspace", "create", "--name", "team-bad", "--default-datastore", str(bad), ok=False)
    assert refused.returncode == 2 and "container_name: must be 3 to 63" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    closed = write(tmp_path / "closed.yml", good.read_text().replace(
        azurite.url, f"http://127.0.0.1:{free_port()}/devstoreaccount1"))
    unreachable = _run(admin, "workspace", "create", "--name", "team-far", "--default-datastore", str(closed),
                       ok=False)
    line = unreachable.stderr.strip()
    assert unreachable.returncode == 1 and line.startswith("error: datastore 'team_store': ") and "\n" not in line
    assert [w["name"] for w in _json(admin, "workspace", "list")] == ["default"]   # neither was left behind
    assert not (folders / "team-bad").exists() and not (folders / "team-far").exists()
    path = _run(admin, "workspace", "create", "--name", "team-p", "--path", str(tmp_path / "p"), ok=False)
    assert path.stderr.startswith("error: --path: a workspace on a server lives in the server's folder")

    made = _json(admin, "workspace", "create", "--name", "team-b", "--default-datastore", str(good))
    assert (made["name"], made["default_datastore"]) == ("team-b", "team_store")
    stores = {d["name"]: d["is_default"] for d in _json(admin, "datastore", "list", "-w", "team-b")}
    assert stores == {"workspaceartifactstore": False, "team_store": True}
    assert [d["name"] for d in _json(admin, "datastore", "list") if d["is_default"]] == ["workspaceartifactstore"]
    model = json.loads(_run(admin, "model", "create", "-w", "team-b", "-n", "wine", "--path",
                            str(models_dir / "wine"), "-o", "json").stdout)
    blobs = {b.name for b in container(azurite, "team").list_blobs()}
    assert {f"blobs/{f['sha256']}" for f in model["files"]} <= blobs
