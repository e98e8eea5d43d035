"""A team on one real server, through the `fleet` command only: the owner makes users and gives
them roles, a Reader and a Data Scientist log in from FLEET_HOMEs of their own (`fleet login`),
each does what their role allows and is refused the rest in one line, a revoked token fails on
its next request, and the activity log says who did what. On SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import _stop_servers

pytestmark = [pytest.mark.slow, pytest.mark.databases]


def _env(home: Path, **extra) -> dict:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = {**os.environ, "FLEET_HOME": str(home), "PATH": path, **extra}
    for k in ("FLEET_SERVER", "FLEET_TOKEN", "FLEET_WORKSPACE", "FLEET_OUTPUT"):
        env.pop(k, None) if k not in extra else None
    return env


def _run(env: dict, *args: str, stdin: str | None = None, ok: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run(["fleet", *args], env=env, capture_output=True, text=True, timeout=300, input=stdin)
    assert (p.returncode == 0) == ok, (args, p.returncode, p.stdout, p.stderr)
    return p


def _json(env: dict, *args: str, **kw):
    return json.loads(_run(env, *args, "-o", "json", **kw).stdout)


def _refused(env: dict, *args: str, stdin: str | None = None) -> str:
    p = _run(env, *args, ok=False, stdin=stdin)
    lines = p.stderr.strip().splitlines()   # a notice may come first (starting a Ray cluster ...)
    assert p.returncode == 1 and lines[-1].startswith("error: ") and len(lines) <= 2, p.stderr   # one line
    return lines[-1]


@pytest.fixture
def owner(fleet_home, models_dir):
    env = _env(fleet_home)
    try:
        _run(env, "server", "start", "-o", "json")
        yield env
    finally:
        _stop_servers(fleet_home)


def test_a_reader_and_a_data_scientist_log_in_and_do_what_their_roles_allow(owner, tmp_path, models_dir):
    url = _json(owner, "server", "status")["url"]
    _run(owner, "model", "register", "--name", "iris", "--version", "1", "--path", str(models_dir / "iris"))
    _run(owner, "online-endpoint", "create", "--name", "team-ep")
    alice = _json(owner, "user", "create", "--name", "alice")
    bob = _json(owner, "user", "create", "--name", "bob", "--service-principal")
    assert alice["token"].startswith("mft_") and alice["token"] not in _run(owner, "user", "list", "-o", "json").stdout
    _run(owner, "role", "assignment", "create", "--assignee", "alice", "--role", "Reader")
    _run(owner, "role", "assignment", "create", "--assignee", "bob", "--role", "AzureML Data Scientist")
    assert {(a["principalName"], a["roleDefinitionName"]) for a in _json(owner, "role", "assignment", "list")} == {
        ("admin", "Owner"), ("alice", "Reader"), ("bob", "AzureML Data Scientist")}

    # alice logs in with her token on standard input; her home keeps it 0600
    reader = _env(tmp_path / "alice")
    _refused(reader, "login", "--server", url, stdin="mft_" + "x" * 43 + "\n")   # checked before it is saved
    assert not (tmp_path / "alice" / "accounts.json").exists()
    shown = _json(reader, "login", "--server", url, stdin=alice["token"] + "\n")
    assert (shown["user"], shown["workspace"], shown["current"]) == ("alice", "default", True)
    assert (tmp_path / "alice" / "accounts.json").stat().st_mode & 0o777 == 0o600
    assert alice["token"] not in _run(reader, "account", "show", "-o", "json").stdout
    assert [m["name"] for m in _json(reader, "model", "list")] == ["iris"]
    assert _json(reader, "online-endpoint", "show", "--name", "team-ep")["name"] == "team-ep"
    line = _refused(reader, "online-endpoint", "create", "--name", "alice-ep")
    assert line == ("error: alice lacks permission Microsoft.MachineLearningServices/workspaces/onlineEndpoints/"
                    "write at scope /workspaces/default")
    assert "onlineEndpoints/listKeys/action" in _refused(reader, "online-endpoint", "get-credentials", "--name", "team-ep")
    assert "models/delete" in _refused(reader, "model", "delete", "--name", "iris", "--version", "1")

    # bob, a service principal, logs in from a token file and deploys
    token_file = tmp_path / "bob.token"
    token_file.write_text(bob["token"])
    scientist = _env(tmp_path / "bob")
    assert _json(scientist, "login", "--server", url, "--token-file", str(token_file))["user"] == "bob"
    _run(scientist, "online-endpoint", "create", "--name", "bob-ep")
    deployed = _json(scientist, "online-deployment", "create", "--name", "blue", "--endpoint", "bob-ep",
                     "--model", "iris:1")
    assert deployed["provisioning_state"] == "Succeeded"
    answer = _json(scientist, "online-endpoint", "invoke", "--name", "bob-ep", "--request-file",
                   str(_request(tmp_path)))
    assert len(answer) == 2
    assert "computes/write" in _refused(scientist, "compute", "create", "--name", "bob-ray")
    assert "roleAssignments/write" in _refused(scientist, "role", "assignment", "create", "--assignee", "bob",
                                               "--role", "Owner")
    # FLEET_SERVER and FLEET_TOKEN still win over the login (a pipeline's own token)
    pipeline = {**scientist, "FLEET_SERVER": url, "FLEET_TOKEN": alice["token"]}
    assert _json(pipeline, "user", "show")["name"] == "alice"

    # revoked: alice's next request fails
    _run(owner, "token", "revoke", "--name", "default", "--user", "alice")
    assert "revoked token" in _refused(reader, "model", "list")
    _run(reader, "logout")
    assert _json(reader, "account", "list") == []

    # the activity log: bob's changes and alice's refused ones, also as access-log lines
    bobs = _json(owner, "activity-log", "list", "--since", "1h", "--caller", "bob")
    assert {(e["operation"].rsplit("workspaces/", 1)[-1], e["status"]) for e in bobs} >= {
        ("onlineEndpoints/write", "Succeeded"), ("onlineEndpoints/deployments/write", "Succeeded"),
        ("computes/write", "Failed")}
    shipped = [json.loads(x) for x in _run(owner, "activity-log", "list", "--caller", "alice", "--format",
                                           "access-log").stdout.splitlines()]
    assert {(s["method"], s["path"], s["status"]) for s in shipped} >= {("PUT", "/api/endpoints/alice-ep", 403)}
    server_log = (Path(owner["FLEET_HOME"]) / "workspaces" / "default" / "logs" / "server.log").read_text()
    assert alice["token"] not in server_log and bob["token"] not in server_log


def _request(tmp_path: Path) -> Path:
    f = tmp_path / "request.json"
    f.write_text(json.dumps({"data": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}))
    return f
