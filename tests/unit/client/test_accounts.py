"""Logins kept by the client (client/accounts.py): 0600, one current, and which server a Fleet
talks to: FLEET_SERVER > the current login > the local workspace's server."""

from __future__ import annotations

import pytest

from modelfleet.client import Fleet
from modelfleet.client.accounts import Account, Accounts, trust
from modelfleet.domain.errors import InvalidInput, NotFound


@pytest.fixture
def home(tmp_path, monkeypatch):
    for k in ("FLEET_SERVER", "FLEET_TOKEN", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("FLEET_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _target(f: Fleet):
    return f.connection._locate()


def test_logins_are_kept_0600_one_is_current_and_none_shows_its_token(home):
    accounts = Accounts()
    accounts.save(Account("https://a.example:8443", "mft_a", "alice", "default"))
    accounts.save(Account("https://b.example:8443", "mft_b", "bob", "team"))
    assert (home / "accounts.json").stat().st_mode & 0o777 == 0o600
    assert [(a["server"], a["current"]) for a in accounts.list()] == [
        ("https://a.example:8443", False), ("https://b.example:8443", True)]
    assert "mft_" not in str(accounts.list())
    assert accounts.set_current("https://a.example:8443/").user == "alice"
    with pytest.raises(NotFound, match="not logged in to https://c.example"):
        accounts.set_current("https://c.example")
    assert accounts.remove(None) == ["https://a.example:8443"]
    assert accounts.current().server == "https://b.example:8443"   # the next becomes current


def test_a_fleet_talks_to_fleet_server_then_the_login_then_the_local_server(home, monkeypatch):
    Accounts().save(Account("https://a.example:8443", "mft_a", "alice", "default"))
    with Fleet() as f:
        assert (_target(f).url, _target(f).token, f.workspace) == ("https://a.example:8443", "mft_a", None)
    monkeypatch.setenv("FLEET_TOKEN", "mft_pipeline")
    with Fleet() as f:
        assert _target(f).token == "mft_pipeline"       # a pipeline's token on the logged-in server
    monkeypatch.setenv("FLEET_SERVER", "https://b.example")
    with Fleet() as f:
        assert _target(f).url == "https://b.example"
    monkeypatch.delenv("FLEET_SERVER")
    monkeypatch.delenv("FLEET_TOKEN")
    Accounts().remove(None)
    with Fleet() as f:
        assert f.workspace is not None                  # no login: this machine's workspace


def test_a_ca_bundle_is_kept_with_the_login_and_a_bad_one_is_one_line(home, tmp_path, monkeypatch):
    with pytest.raises(InvalidInput, match="--ca-bundle '/nowhere.pem'"):
        Accounts().keep_ca("/nowhere.pem")
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "missing.pem"))
    with pytest.raises(InvalidInput, match="CA bundle .*missing.pem"):
        trust(None)
    with pytest.raises(InvalidInput, match="--server 'a.example'"):
        from modelfleet.client.accounts import normalize
        normalize("a.example")
