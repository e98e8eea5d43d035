"""`fleet.datastores` over the real control API in this process: create, list, show, update,
set-default, listSecrets, delete; secrets never in what show and list return."""

from __future__ import annotations

import pytest

from modelfleet.domain.errors import AlreadyExists, DatastoreError, InvalidInput, NotFound

KEY = "c2VjcmV0LWtleS1mb3ItdGVzdHM="


def document(name="models_store", key=KEY, **more) -> dict:
    return {"name": name, "type": "azure_blob", "account_name": "mystorageaccount", "container_name": "models",
            "credentials": {"account_key": key}, **more}


def test_a_datastore_round_trip_never_shows_its_secret(api_fleet):
    ds = api_fleet.datastores
    created = ds.create(document(description="the team's models"))
    assert created["credentials"] == {"account_key": "<redacted>"} and created["is_default"] is False
    assert KEY not in str(ds.list()) and KEY not in str(ds.get("models_store"))
    assert [d["name"] for d in ds.list()] == ["workspaceartifactstore", "models_store"]
    assert ds.get_default()["name"] == "workspaceartifactstore"
    assert ds.list_secrets("models_store") == {"secrets_type": "account_key", "account_key": KEY}
    with pytest.raises(AlreadyExists, match="models_store"):
        ds.create(document())
    ds.update(document(key="bmV3LWtleQ==", description="moved"))
    assert ds.get("models_store")["description"] == "moved"
    assert ds.list_secrets("models_store")["account_key"] == "bmV3LWtleQ=="


@pytest.mark.slow   # the Azure client retries twice, with backoff, before it says so
def test_a_default_datastore_that_cannot_be_reached_is_refused_in_one_line(api_fleet):
    ds = api_fleet.datastores
    unreachable = document(account_url="http://127.0.0.1:9/devstoreaccount1")   # the discard port: nobody listens
    with pytest.raises(DatastoreError) as e:
        ds.create(unreachable, default=True)
    assert str(e.value).startswith("datastore 'models_store': cannot reach http://127.0.0.1:9/")
    assert "\n" not in str(e.value) and KEY not in str(e.value)
    assert [d["name"] for d in ds.list()] == ["workspaceartifactstore"]     # nothing changed
    ds.create(unreachable)
    with pytest.raises(DatastoreError, match="cannot reach"):
        ds.set_default("models_store")
    assert ds.get_default()["name"] == "workspaceartifactstore"
    ds.set_default("workspaceartifactstore")
    with pytest.raises(NotFound, match="datastore 'nope' not found"):
        ds.set_default("nope")


@pytest.mark.parametrize("change, message", [
    ({"container_name": "Bad_Name"}, "container_name: must be 3 to 63"),
    ({"credentials": {"account_key": KEY, "sas_token": "x"}}, "credentials: give account_key or sas_token, not both"),
    ({"name": "workspaceartifactstore"}, "name: 'workspaceartifactstore' is the workspace's own folder"),
    ({"type": "s3"}, "type:"),
])
def test_a_bad_document_is_one_line_naming_its_field_and_changes_nothing(api_fleet, change, message):
    with pytest.raises(InvalidInput, match=message):
        api_fleet.datastores.create({**document(), **change})
    assert [d["name"] for d in api_fleet.datastores.list()] == ["workspaceartifactstore"]


def test_models_register_from_datastore_uris_or_say_what_is_missing(api_fleet, inprocess, tmp_path):
    folder = inprocess.ws.artifacts / "uploads" / "m1"
    folder.mkdir(parents=True)
    (folder / "model.pkl").write_bytes(b"not really a model")
    model = api_fleet.models.register("m1", "azureml://datastores/workspaceartifactstore/paths/uploads/m1/",
                                      type="custom")
    assert [f["path"] for f in model.files] == ["m1/model.pkl"]
    assert model.sha256 == api_fleet.models.register("m1-local", folder, type="custom").sha256
    with pytest.raises(InvalidInput, match="no datastore is registered for account 'acct01' and container 'c1'"):
        api_fleet.models.register("m2", "https://acct01.blob.core.windows.net/c1/trained/m2")
    with pytest.raises(NotFound, match="datastore 'nope' not found"):
        api_fleet.models.register("m2", "azureml://datastores/nope/paths/trained/m2")
    with pytest.raises(NotFound, match="path 'uploads/none' not found"):
        api_fleet.models.register("m2", "azureml://datastores/workspaceartifactstore/paths/uploads/none")
    with pytest.raises(InvalidInput, match="local files are uploaded by the client"):
        api_fleet.request("POST", "/api/models/m2/versions", json={"path": "/etc"})
    assert [m.name for m in api_fleet.models.list()] == ["m1", "m1-local"]
