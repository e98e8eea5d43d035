"""Remote use across a real network boundary: the server on the host's end of a veth pair, with TLS
from a CA minted in the test and its metadata in a real PostgreSQL; the CLI in a network namespace
of its own, with a FLEET_HOME of its own, where the server's workspace folder is hidden under an
empty tmpfs (a mount namespace of the client's own): after `fleet login` with a user's token and
the CA, the seed's three scripts run unchanged."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from . import netns
from .conftest import _stop_servers
from .helpers import free_port, run_seed_scripts, wait_until
from .tls_ca import mint

# the client's view of the filesystem: the server's home ($0) is an empty tmpfs, then the command
HIDE_SERVER_HOME = 'mount -t tmpfs -o size=1m,mode=0700 fleet-hidden "$0" && exec "$@"'


def _fleet(env: dict, *args: str, wrap: list[str] = ()) -> subprocess.CompletedProcess:
    p = subprocess.run([*wrap, "fleet", *args], env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, (args, p.stdout, p.stderr)
    return p


@pytest.fixture
def namespace():
    ns = netns.create()
    try:
        yield ns
    finally:
        ns.delete()


@pytest.mark.slow
def test_the_seed_scripts_run_from_another_network_namespace_against_tls_and_postgresql(
        namespace, postgres_server, tmp_path):
    ca = mint(tmp_path / "tls", [namespace.host_address])
    server_home, client_home = tmp_path / "server-home", tmp_path / "client-home"
    client_home.mkdir()
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    base = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_") and k not in
            ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")}
    owner = {**base, "FLEET_HOME": str(server_home), "PATH": path}
    try:
        _fleet(owner, "server", "start", "--host", namespace.host_address, "--port", str(free_port()),
               "--ssl-certfile", str(ca.server_cert), "--ssl-keyfile", str(ca.server_key),
               "--database-url", postgres_server.create_database())
        status = json.loads(_fleet(owner, "server", "status", "--show-token", "-o", "json").stdout)
        assert status["url"].startswith(f"https://{namespace.host_address}:")
        # the owner makes a user for the client and hands over its token and the CA, nothing else
        alice = json.loads(_fleet(owner, "user", "create", "--name", "alice", "-o", "json").stdout)
        _fleet(owner, "role", "assignment", "create", "--assignee", "alice", "--role", "AzureML Data Scientist")
        handed = tmp_path / "handed"
        handed.mkdir()
        (handed / "token").write_text(alice["token"] + "\n")
        shutil.copy(ca.ca_cert, handed / "ca.pem")
        wrap = [*namespace.exec_prefix(), "unshare", "--mount", "--", "sh", "-c", HIDE_SERVER_HOME, str(server_home)]

        # inside, the host's loopback is another machine's, and the server's folder is not there
        inside = subprocess.run([*wrap, "sh", "-c", f"ls -A {server_home}; ip -4 -o addr show"],
                                capture_output=True, text=True, timeout=30)
        assert inside.returncode == 0 and namespace.inner_address in inside.stdout, inside.stderr
        assert not any(line and not line[0].isdigit() for line in inside.stdout.splitlines())   # ls: nothing

        client = {**base, "FLEET_HOME": str(client_home), "PATH": path}
        logged_in = json.loads(_fleet(client, "login", "--server", status["url"], "--token-file", str(handed / "token"),
                                      "--ca-bundle", str(handed / "ca.pem"), "-o", "json", wrap=wrap).stdout)
        assert (logged_in["user"], logged_in["current"]) == ("alice", True)
        run_seed_scripts(client_home, tmp_path, wrap=wrap)

        # from the host: the same server served it all, its metadata in PostgreSQL, not in a file
        workspace = server_home / "workspaces" / "default"
        assert json.loads(_fleet(owner, "server", "status", "--show-token", "-o", "json").stdout)["pid"] == status["pid"]
        assert not (workspace / "workspace.db").exists()
        assert {m["name"] for m in json.loads(_fleet(owner, "model", "list", "-o", "json").stdout)} == {
            "model_a", "model_b", "model_c"}
        # every change came across the veth pair from alice: the activity log and the gateway say so
        changes = json.loads(_fleet(owner, "activity-log", "list", "--caller", "alice", "-o", "json").stdout)
        assert len(changes) > 10 and {(c["client"], c["status"]) for c in changes} == {
            (namespace.inner_address, "Succeeded")}
        access_log = workspace / "logs" / "access.log"
        wait_until(lambda: access_log.exists() and access_log.read_text().strip(), timeout=10)
        clients = {json.loads(line)["client"] for line in access_log.read_text().splitlines()}
        assert clients == {namespace.inner_address}
        # the client kept its login and the CA in its own home, nothing of the server's
        assert sorted(p.name for p in client_home.iterdir()) == [".accounts.lock", "accounts.json", "ca"]
        listed = _fleet(client, "online-endpoint", "list", "-o", "json", wrap=wrap)
        assert {e["name"] for e in json.loads(listed.stdout)} == {"aci-model-a", "aci-model-b", "aci-model-c"}
    finally:
        _stop_servers(server_home)
    assert namespace.pids() == []
