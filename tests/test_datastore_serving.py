"""Datastores at work, end to end: a real server, Azurite (the Azure Storage emulator) on
127.0.0.1, models trained in the test. Models registered from azureml:// and account URLs with
Azure's YAML serve; uploads land in the default datastore before their version exists; a store
that stops or refuses its credentials fails registration in one line and registers nothing,
while the replicas already serving go on."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import threading

import httpx
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import ContainerClient

from .azurite import ACCOUNT, KEY, azurite, model_file  # noqa: F401  (azurite: a fixture)
from .conftest import IRIS_ROWS
from .helpers import iris_score_py, run_cli, wait_until, write

pytestmark = pytest.mark.slow

SCORE_PY = iris_score_py("score.py from the datastore")


def container(azurite, name: str) -> ContainerClient:
    c = ContainerClient(azurite.url, name, credential={"account_name": ACCOUNT, "account_key": KEY})
    if not c.exists():
        c.create_container()
    return c


def blob_yaml(path, azurite, name: str, container_name: str, key: str = KEY):
    """Azure's datastore YAML, plus modelfleet's account_url for the emulator."""
    return write(path, f"""
        $schema: https://azuremlschemas.azureedge.net/latest/azureBlob.schema.json
        name: {name}
        type: azure_blob
        description: models the team trained
        account_name: {ACCOUNT}
        container_name: {container_name}
        credentials:
          account_key: {key}
        account_url: {azurite.url}
        """)


def score(fleet, endpoint: str) -> list:
    ep = fleet.online_endpoints.get(endpoint)
    key = fleet.online_endpoints.get_keys(endpoint)["primaryKey"]
    r = httpx.post(ep["scoring_uri"], json={"data": IRIS_ROWS}, headers={"authorization": f"Bearer {key}"},
                   timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def test_models_registered_from_a_datastore_serve_and_uploads_go_to_the_default_one(fleet, fleet_home, azurite,
                                                                                   models_dir, tmp_path):
    team = container(azurite, "team-models")
    for f in (models_dir / "iris").iterdir():   # what a user copied there (azcopy, a training job)
        team.upload_blob(f"trained/iris/{f.name}", f.read_bytes())
    shown = run_cli("datastore", "create", "-f", str(blob_yaml(tmp_path / "team.yml", azurite, "team_store",
                                                                  "team-models")), "-o", "json").stdout
    assert KEY not in shown and json.loads(shown)["credentials"] == {"account_key": "<redacted>"}
    assert KEY not in run_cli("datastore", "list", "-o", "json").stdout
    assert KEY not in run_cli("datastore", "show", "-n", "team_store", "-o", "json").stdout
    assert fleet.datastores.list_secrets("team_store")["account_key"] == KEY

    # Azure's model YAML with an azureml://datastores path; the long form and the account URL are the same model
    model_yml = write(tmp_path / "model.yml", """
        $schema: https://azuremlschemas.azureedge.net/latest/model.schema.json
        name: iris-blob
        version: 1
        path: azureml://datastores/team_store/paths/trained/iris
        description: read from the team's container
        """)
    v1 = json.loads(run_cli("model", "create", "-f", str(model_yml), "-o", "json").stdout)
    v2 = json.loads(run_cli("model", "create", "-n", "iris-blob", "--path",
                            "azureml://subscriptions/0000/resourcegroups/rg/workspaces/ws/datastores/team_store/"
                            "paths/trained/iris/", "-o", "json").stdout)
    v3 = fleet.models.register("iris-blob", f"https://{ACCOUNT}.blob.core.windows.net/team-models/trained/iris")
    local = fleet.models.register("iris-local", models_dir / "iris")
    assert v1["sha256"] == v2["sha256"] == v3.sha256 == local.sha256
    assert [f["path"] for f in v1["files"]] == ["iris/model.joblib"]

    fleet.online_endpoints.create("blob-ep")
    fleet.online_deployments.create("blue", "blob-ep", "iris-blob:1")
    fleet.online_endpoints.create("local-ep")
    fleet.online_deployments.create("blue", "local-ep", "iris-local:1")
    assert score(fleet, "blob-ep") == score(fleet, "local-ep")

    # scoring code that lives in the datastore too, as Azure's code: takes it
    team.upload_blob("src/onlinescoring/score.py", SCORE_PY.encode())
    run_cli("online-deployment", "create", "-n", "green", "-e", "blob-ep", "--model", "iris-blob:1",
            "--code", "azureml://datastores/team_store/paths/src/onlinescoring", "--scoring-script", "score.py")
    ep = fleet.online_endpoints.get("blob-ep")
    r = httpx.post(ep["scoring_uri"], json={"data": IRIS_ROWS}, timeout=30,
                   headers={"authorization": f"Bearer {fleet.online_endpoints.get_keys('blob-ep')['primaryKey']}",
                            "azureml-model-deployment": "green"})
    assert r.json() == {"scored_by": "score.py from the datastore", "predictions": score(fleet, "local-ep")}

    # a default datastore: a later upload is in it, blob by blob, before its version exists
    run_cli("datastore", "create", "-f", str(blob_yaml(tmp_path / "ws.yml", azurite, "workspace_store",
                                                       "workspace")), "--default")
    assert fleet.datastores.get_default()["name"] == "workspace_store"
    wine = fleet.models.register("wine", models_dir / "wine")
    stored = {b.name for b in container(azurite, "workspace").list_blobs()}
    assert {f"blobs/{f['sha256']}" for f in wine.files} <= stored
    data = container(azurite, "workspace").download_blob(f"blobs/{wine.files[0]['sha256']}").readall()
    assert hashlib.sha256(data).hexdigest() == wine.files[0]["sha256"]
    run_cli("datastore", "delete", "-n", "workspace_store", "-y", code=1)   # the default stays

    # the workspace's folder loses a version: it comes back from the default datastore to serve
    again = fleet.models.register("iris-again", models_dir / "iris")
    folder = fleet_home / "workspaces" / "default" / "artifacts" / "models" / again.sha256
    shutil.rmtree(folder)
    fleet.online_endpoints.create("again-ep")
    fleet.online_deployments.create("blue", "again-ep", "iris-again:1")
    assert score(fleet, "again-ep") == score(fleet, "local-ep") and (folder / "iris" / "model.joblib").is_file()


def test_a_workspace_created_with_a_default_datastore_uploads_there(fleet_home, azurite, models_dir, tmp_path):
    good = blob_yaml(tmp_path / "blob.yml", azurite, "team_store", "team")
    shown = json.loads(run_cli("workspace", "create", "-n", "team", "--default-datastore", str(good),
                               "-o", "json").stdout)
    assert shown["default_datastore"] == "team_store"
    model = json.loads(run_cli("model", "create", "-w", "team", "-n", "wine", "--path", str(models_dir / "wine"),
                               "-o", "json").stdout)
    assert container(azurite, "team").get_blob_client(f"blobs/{model['files'][0]['sha256']}").exists()
    bad = write(tmp_path / "bad.yml", good.read_text().replace("container_name: team", "container_name: Bad_Name"))
    out = run_cli("workspace", "create", "-n", "other", "--default-datastore", str(bad), code=2).output
    assert "container_name: must be 3 to 63" in out
    assert "other" not in run_cli("workspace", "list", "-o", "json").stdout   # a refused document leaves none


def test_a_stopped_store_or_wrong_credentials_fail_registration_in_one_line_while_serving_goes_on(
        fleet, fleet_home, azurite, models_dir, tmp_path):
    team = container(azurite, "team-models")
    team.upload_blob("trained/iris/model.joblib", (models_dir / "iris" / "model.joblib").read_bytes())
    fleet.datastores.create({"name": "team_store", "type": "azure_blob", "account_name": ACCOUNT,
                             "container_name": "team-models", "account_url": azurite.url,
                             "credentials": {"account_key": KEY}}, default=True)
    fleet.models.register("iris", "azureml://datastores/team_store/paths/trained/iris", "1")
    fleet.online_endpoints.create("iris-ep")
    fleet.online_deployments.create("blue", "iris-ep", "iris:1")
    before = score(fleet, "iris-ep")
    versions = [m.ref for m in fleet.models.list()]

    wrong = blob_yaml(tmp_path / "wrong.yml", azurite, "wrong_key", "team-models", key="d3Jvbmcga2V5" * 7)
    run_cli("datastore", "create", "-f", str(wrong))
    out = run_cli("model", "create", "-n", "iris", "--path", "azureml://datastores/wrong_key/paths/trained/iris",
                  code=1).output.strip()
    assert out.startswith("error: datastore 'wrong_key': ") and "refused" in out and "\n" not in out, out
    assert "d3Jvbmcga2V5" not in out

    azurite.stop()
    try:
        for path in ("azureml://datastores/team_store/paths/trained/iris", str(models_dir / "wine")):
            out = run_cli("model", "create", "-n", "iris", "--path", path, code=1).output.strip()
            assert out.startswith("error: datastore 'team_store': cannot reach") and "\n" not in out, out
        assert [m.ref for m in fleet.models.list()] == versions    # nothing half-registered
        assert score(fleet, "iris-ep") == before                        # the replicas serve on
    finally:
        azurite.start()
    assert fleet.models.register("wine", models_dir / "wine").version == "1"   # and the store takes it again


def test_a_server_killed_while_it_uploads_to_the_store_leaves_no_version_and_the_upload_resumes(
        fleet, fleet_home, azurite, tmp_path):
    store = container(azurite, "workspace")
    fleet.datastores.create({"name": "workspace_store", "type": "azure_blob", "account_name": ACCOUNT,
                             "container_name": "workspace", "account_url": azurite.url,
                             "credentials": {"account_key": KEY}}, default=True)
    (tmp_path / "big").mkdir()
    sha = model_file(tmp_path / "big" / "weights.bin", 128 << 20)
    blob = store.get_blob_client(f"blobs/{sha}")
    server_pid = fleet.server.status()["pid"]
    failed: list[Exception] = []

    def register() -> None:
        try:
            fleet.models.register("big", tmp_path / "big", "1", type="custom")
        except Exception as e:   # the server was killed under it
            failed.append(e)

    thread = threading.Thread(target=register)
    thread.start()

    def staged() -> int:
        try:
            return len(blob.get_block_list("uncommitted")[1])
        except ResourceNotFoundError:
            return 0

    wait_until(lambda: staged() > 0, timeout=120)
    os.kill(server_pid, signal.SIGKILL)
    thread.join(60)
    assert failed and not blob.exists()
    assert [m.ref for m in fleet.models.list()] == []          # a new server: no version, no half of one
    model = fleet.models.register("big", tmp_path / "big", "1", type="custom")
    assert model.ref == "big:1" and blob.exists() and blob.get_blob_properties().size == 128 << 20
    log = (fleet_home / "workspaces" / "default" / "logs" / "server.log").read_text()
    assert f"blob {sha[:12]} resumed" in log
