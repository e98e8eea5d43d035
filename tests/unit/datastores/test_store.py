"""Datastore rows: created once, shown redacted, the secret encrypted in the database and
decrypted only for opening the datastore."""

import pytest

from modelfleet.datastores.documents import REDACTED, parse_document
from modelfleet.datastores.secrets import SecretBox
from modelfleet.domain.errors import AlreadyExists, NotFound
from modelfleet.store import Database
from modelfleet.store.datastores import DatastoreStore

KEY = "a2V5LW5ldmVyLXNob3duLWFueXdoZXJl"


@pytest.fixture
def store(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'workspace.db'}")
    yield DatastoreStore(db, SecretBox(tmp_path / "datastore.key"))
    db.close()


def doc(name="models_store", **creds):
    return parse_document({"name": name, "type": "azure_blob", "account_name": "acct01", "container_name": "models",
                           "credentials": creds or {"account_key": KEY}})


def test_create_show_list_get_update_delete(store, tmp_path):
    shown = store.create(doc())
    assert shown["credentials"] == {"account_key": REDACTED} and shown["container_name"] == "models"
    store.create(doc("public_store", sas_token={"env": "SAS"}))
    assert [d["name"] for d in store.list()] == ["models_store", "public_store"]
    assert store.show("public_store")["credentials"] == {"sas_token": {"env": "SAS"}}
    assert store.get("models_store").credentials.secret() == KEY
    for text in (str(store.list()), str(store.show("models_store")), repr(store.get("models_store"))):
        assert KEY not in text
    assert KEY.encode() not in (tmp_path / "workspace.db").read_bytes()  # at rest: encrypted
    with pytest.raises(AlreadyExists, match="datastore 'models_store' already exists"):
        store.create(doc())
    store.update(doc(sas_token="sv=1&sig=new"))
    assert store.get("models_store").credentials.kind == "sas_token"
    store.delete("models_store")
    with pytest.raises(NotFound, match="datastore 'models_store' not found"):
        store.get("models_store")
    with pytest.raises(NotFound):
        store.update(doc())
    with pytest.raises(NotFound):
        store.delete("models_store")


def test_one_default_at_most_kept_by_updates_and_never_deleted(store):
    from modelfleet.domain.errors import Conflict
    store.create(doc("a_store"), default=True)
    store.create(doc("b_store"))
    assert store.default().name == "a_store" and store.show("a_store")["is_default"] is True
    store.update(doc("a_store", sas_token="sv=1&sig=x"))        # an update keeps the flag
    assert store.default().credentials.secret() == "sv=1&sig=x"
    store.set_default("b_store")
    assert [d["name"] for d in store.list() if d["is_default"]] == ["b_store"]
    with pytest.raises(Conflict, match="'b_store' is the workspace's default"):
        store.delete("b_store")
    store.set_default(None)
    assert store.default() is None
    store.delete("b_store")
    with pytest.raises(NotFound, match="datastore 'nope' not found"):
        store.set_default("nope")
    assert store.find("acct01", "models") == "a_store" and store.find("acct01", "other") is None
