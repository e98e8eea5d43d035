"""A client elsewhere verifies the server's certificate against the CA it is given (REQUESTS_CA_BUNDLE,
SSL_CERT_FILE, `Fleet(ca_bundle=...)`), and says in one line when it cannot. A real TLS server on
127.0.0.1 with a certificate from a CA minted in the test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from modelfleet import Fleet

from .conftest import _stop_servers
from .tls_ca import mint


def _run(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["fleet", *args], env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def tls_server(tmp_path):
    ca = mint(tmp_path / "tls", ["127.0.0.1", "localhost"])
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    owner = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_") and k not in
             ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")}
    owner.update(FLEET_HOME=str(tmp_path / "server-home"), PATH=path)
    try:
        started = _run(owner, "server", "start", "--ssl-certfile", str(ca.server_cert),
                       "--ssl-keyfile", str(ca.server_key))
        assert started.returncode == 0, started.stderr
        status = json.loads(_run(owner, "server", "status", "--show-token", "-o", "json").stdout)
        assert status["url"].startswith("https://127.0.0.1:")
        client = {**owner, "FLEET_HOME": str(tmp_path / "client-home"), "FLEET_SERVER": status["url"],
                  "FLEET_TOKEN": status["token"]}
        yield ca, client, owner
    finally:
        _stop_servers(tmp_path / "server-home")


@pytest.mark.slow
def test_the_client_trusts_the_ca_it_is_given_and_says_so_in_one_line_otherwise(tls_server, tmp_path):
    ca, client, _owner = tls_server

    refused = _run(client, "model", "list")   # certifi's public CAs do not vouch for a test CA
    assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "certificate" in refused.stderr and "--ca-bundle" in refused.stderr and "REQUESTS_CA_BUNDLE" in refused.stderr

    for variable in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        listed = _run({**client, variable: str(ca.ca_cert)}, "model", "list", "-o", "json")
        assert listed.returncode == 0 and json.loads(listed.stdout) == [], (variable, listed.stderr)

    other = mint(tmp_path / "other", ["127.0.0.1"], name="another CA")
    wrong = _run({**client, "REQUESTS_CA_BUNDLE": str(other.ca_cert)}, "model", "list")
    assert wrong.returncode == 1 and len(wrong.stderr.strip().splitlines()) == 1
    assert str(other.ca_cert) in wrong.stderr and "REQUESTS_CA_BUNDLE" in wrong.stderr

    missing = _run({**client, "SSL_CERT_FILE": str(tmp_path / "nope.pem")}, "model", "list")
    assert missing.returncode == 2 and missing.stderr.strip().endswith(f"SSL_CERT_FILE: {tmp_path / 'nope.pem'}: no such file")

    fleet = Fleet(server=client["FLEET_SERVER"], token=client["FLEET_TOKEN"], ca_bundle=ca.ca_cert)
    try:
        assert fleet.workspace_name == "default" and fleet.models.list() == []
    finally:
        fleet.close()


@pytest.mark.slow
def test_login_keeps_the_ca_it_was_given_and_refuses_an_untrusted_server_in_one_line(tls_server, tmp_path):
    ca, client, owner = tls_server
    bob = json.loads(_run(owner, "user", "create", "--name", "bob", "-o", "json").stdout)
    (tmp_path / "token").write_text(bob["token"] + "\n")
    home = Path(client["FLEET_HOME"])
    plain = {k: v for k, v in client.items() if k not in ("FLEET_SERVER", "FLEET_TOKEN")}
    login = ("login", "--server", client["FLEET_SERVER"], "--token-file", str(tmp_path / "token"))

    refused = _run(plain, *login)
    assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "do not vouch for" in refused.stderr and not (home / "accounts.json").exists()   # nothing kept

    assert _run(plain, *login, "--ca-bundle", str(ca.ca_cert)).returncode == 0
    shown = _run(plain, "user", "show", "-o", "json")   # no variable names the CA: the login's copy of it does
    assert shown.returncode == 0 and json.loads(shown.stdout)["name"] == "bob", shown.stderr
