"""Datastore documents: Azure's azure_blob YAML, one-line errors naming the field, secrets that
are never shown and are stored encrypted."""

import os
import stat

import pytest

from modelfleet.datastores.documents import REDACTED, join_secret, parse_document, redacted, split_secret
from modelfleet.datastores.secrets import SecretBox
from modelfleet.domain.errors import IntegrityError, InvalidInput, SpecError

KEY = "c2VjcmV0LWFjY291bnQta2V5LXZhbHVl"


def doc(**over):
    base = {"$schema": "https://azuremlschemas.azureedge.net/latest/azureBlob.schema.json",
            "name": "models_store", "type": "azure_blob", "description": "models", "account_name": "acct01",
            "container_name": "models", "credentials": {"account_key": KEY}}
    return {**base, **over}


def test_azure_yaml_parses_with_defaults_and_the_account_url():
    d = parse_document(doc())
    assert (d.endpoint, d.protocol, d.credentials.kind) == ("core.windows.net", "https", "account_key")
    assert d.url == "https://acct01.blob.core.windows.net"
    d2 = parse_document(doc(account_url="http://127.0.0.1:10000/acct01/", credentials={"sas_token": "sv=1&sig=x"}))
    assert d2.url == "http://127.0.0.1:10000/acct01" and d2.credentials.secret() == "sv=1&sig=x"
    assert parse_document(doc(credentials={})).credentials.secret() is None  # anonymous


@pytest.mark.parametrize("over, says", [
    ({"name": "bad-name"}, "blob.yml: name: must start with a letter"),
    ({"type": "s3"}, "blob.yml: type: Input should be 'azure_blob'"),
    ({"account_name": "Acct"}, "blob.yml: account_name: must be 3 to 24 lowercase"),
    ({"container_name": "a--b"}, "blob.yml: container_name: must be 3 to 63"),
    ({"protocol": "ftp"}, "blob.yml: protocol:"),
    ({"account_url": "ftp://x"}, "blob.yml: account_url: must be an http:// or https:// URL"),
    ({"credentials": {"account_key": "a", "sas_token": "b"}}, "blob.yml: credentials: give account_key or sas_token"),
    ({"credentials": {"account_key": 5}}, "blob.yml: credentials.account_key: must be a string, or a reference"),
    ({"credentials": {"sas_token": {"env": "A", "file": "b"}}}, "blob.yml: credentials.sas_token: give exactly one"),
    ({"credentials": {"client_secret": "x"}}, "blob.yml: credentials.client_secret: Extra inputs"),
    ({"colour": "blue"}, "blob.yml: colour: Extra inputs are not permitted"),
])
def test_bad_documents_are_one_line_naming_the_field(over, says):
    with pytest.raises(SpecError) as e:
        parse_document(doc(**over), "blob.yml")
    assert str(e.value).startswith(says) and "\n" not in str(e.value)


def test_secrets_never_show_in_repr_dumps_or_the_redacted_view():
    d = parse_document(doc())
    for text in (repr(d), str(d), str(d.model_dump()), str(d.model_dump(mode="json")), str(redacted(d))):
        assert KEY not in text
    assert redacted(d)["credentials"] == {"account_key": REDACTED}


def test_references_are_resolved_when_used_and_shown_as_references(tmp_path, monkeypatch):
    monkeypatch.setenv("DS_KEY", KEY)
    d = parse_document(doc(credentials={"account_key": {"env": "DS_KEY"}}))
    assert d.credentials.secret() == KEY and redacted(d)["credentials"] == {"account_key": {"env": "DS_KEY"}}
    (tmp_path / "sas").write_text("sv=2&sig=y\n")
    assert parse_document(doc(credentials={"sas_token": {"file": str(tmp_path / "sas")}})).credentials.secret() \
        == "sv=2&sig=y"
    monkeypatch.delenv("DS_KEY")
    with pytest.raises(InvalidInput, match="credentials.account_key: environment variable DS_KEY is not set"):
        d.credentials.secret()


def test_the_store_keeps_the_secret_encrypted_with_a_private_key_file(tmp_path):
    box = SecretBox(tmp_path / "datastore.key")
    public, secret = split_secret(parse_document(doc()))
    token = box.encrypt(secret)
    assert KEY not in str(public) and KEY not in token
    assert stat.S_IMODE(os.stat(tmp_path / "datastore.key").st_mode) == 0o600
    again = SecretBox(tmp_path / "datastore.key")  # another process: the same key from the file
    assert join_secret(public, again.decrypt(token)).credentials.secret() == KEY


def test_a_replaced_or_exposed_key_file_is_refused_in_one_line(tmp_path):
    box = SecretBox(tmp_path / "datastore.key")
    token = box.encrypt("s3cret")
    (tmp_path / "datastore.key").unlink()
    with pytest.raises(IntegrityError, match="cannot be decrypted"):
        SecretBox(tmp_path / "datastore.key").decrypt(token)
    os.chmod(tmp_path / "datastore.key", 0o644)
    with pytest.raises(IntegrityError, match="readable by others .*chmod 600"):
        SecretBox(tmp_path / "datastore.key").decrypt(token)
