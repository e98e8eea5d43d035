"""Several workspaces on one real server, through the `fleet` command and raw HTTP only: the owner
makes a workspace over the API, deploys a model in it and in the primary, each scores under its
own prefix; a user with a role only there sees nothing of the primary; deleting it stops its
replicas (by pid) and removes its store and folder; the server started again hosts it again. On
SQLite and on PostgreSQL."""

from __future__ import annotations

import json

import httpx
import pytest

from .conftest import IRIS_ROWS, _stop_servers
from .helpers import alive, wait_until
from .test_team import _env, _json, _refused, _run

pytestmark = [pytest.mark.slow, pytest.mark.databases]

WS_ID = "/subscriptions/local/resourceGroups/local/providers/Microsoft.MachineLearningServices/workspaces/{}"


def _score(url: str, key: str) -> list:
    r = httpx.post(url, json={"data": IRIS_ROWS}, headers={"authorization": f"Bearer {key}"}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def _deploy(env: dict, workspace: str, models_dir) -> tuple[str, str, list[int]]:
    """iris on endpoint ep-WORKSPACE: its scoring URI, its key, its replicas' pids."""
    endpoint = f"ep-{workspace}"
    _run(env, "model", "register", "-w", workspace, "--name", "iris", "--version", "1", "--path",
         str(models_dir / "iris"))
    _run(env, "online-endpoint", "create", "-w", workspace, "--name", endpoint)
    deployed = _json(env, "online-deployment", "create", "-w", workspace, "--name", "blue", "--endpoint", endpoint,
                     "--model", "iris:1", "--all-traffic")
    assert deployed["provisioning_state"] == "Succeeded"
    shown = _json(env, "online-endpoint", "show", "-w", workspace, "--name", endpoint)
    key = _json(env, "online-endpoint", "get-credentials", "-w", workspace, "--name", endpoint)["primaryKey"]
    return shown["scoring_uri"], key, [r["pid"] for r in deployed["replicas"]]


def test_a_server_hosts_workspaces_made_and_deleted_over_the_api(fleet_home, tmp_path, models_dir):
    owner = _env(fleet_home)
    try:
        _run(owner, "server", "start")
        url = _json(owner, "server", "status")["url"]
        first_admin = (fleet_home / "workspaces" / "default" / "first-admin.token").read_text().strip()
        admin = _env(tmp_path / "admin", FLEET_SERVER=url, FLEET_TOKEN=first_admin)   # lasts across restarts
        made = _json(admin, "workspace", "create", "--name", "team-b")
        assert (made["id"], made["name"], made["url"]) == (WS_ID.format("team-b"), "team-b", f"{url}/workspaces/team-b")
        folder = fleet_home / "workspaces" / "default" / "workspaces" / "team-b"
        assert folder.is_dir()
        listed = _json(admin, "workspace", "list")
        assert [(w["id"], w["current"]) for w in listed] == [(WS_ID.format("default"), True),
                                                             (WS_ID.format("team-b"), False)]

        b_uri, b_key, b_pids = _deploy(admin, "team-b", models_dir)
        a_uri, a_key, a_pids = _deploy(admin, "default", models_dir)
        assert b_uri == f"{url}/workspaces/team-b/endpoints/ep-team-b/score" and a_uri == f"{url}/endpoints/ep-default/score"
        assert len(_score(b_uri, b_key)) == len(_score(a_uri, a_key)) == 2
        assert [e["name"] for e in _json(admin, "online-endpoint", "list", "-w", "team-b")] == ["ep-team-b"]

        # bea holds a role on team-b only: the primary does not exist for her
        token = _json(admin, "user", "create", "--name", "bea")["token"]
        _run(admin, "role", "assignment", "create", "--assignee", "bea", "--role", "Reader",
             "--scope", WS_ID.format("team-b"))
        bea = _env(tmp_path / "bea", FLEET_SERVER=url, FLEET_TOKEN=token)
        assert [w["name"] for w in _json(bea, "workspace", "list")] == ["team-b"]
        assert [e["name"] for e in _json(bea, "online-endpoint", "list", "-w", "team-b")] == ["ep-team-b"]
        assert _refused(bea, "online-endpoint", "list", "-w", "default") == "error: workspace 'default' not found"
        assert _refused(bea, "online-endpoint", "show", "--name", "ep-default") == \
            "error: workspace 'default' not found"
        # logged in, she picks team-b once: commands without -w go there
        bea_login = _env(tmp_path / "bea-login")
        assert _json(bea_login, "login", "--server", url, stdin=token + "\n")["user"] == "bea"
        picked = _json(bea_login, "workspace", "set", "-w", "team-b")
        assert (picked["id"], picked["current"]) == (WS_ID.format("team-b"), True)
        assert _json(bea_login, "account", "show")["workspace"] == "team-b"
        assert [e["name"] for e in _json(bea_login, "online-endpoint", "list")] == ["ep-team-b"]
        assert _json(bea_login, "workspace", "show")["name"] == "team-b"
        assert _refused(bea_login, "workspace", "set", "-w", "default") == "error: workspace 'default' not found"
        with httpx.Client(base_url=url, headers={"authorization": f"Bearer {token}"}) as c:
            assert c.get("/api/endpoints").status_code == c.get("/workspaces/nowhere/api/endpoints").status_code == 404
            nowhere = c.post("/workspaces/nowhere/endpoints/ep-team-b/score", json={"data": IRIS_ROWS})
            assert nowhere.status_code == 404 and nowhere.json()["error"]["message"] == "endpoint 'ep-team-b' not found"
        # a Reader at / may read every workspace but make none
        _run(admin, "role", "assignment", "create", "--assignee", "bea", "--role", "Reader", "--scope", "/")
        assert _refused(bea, "workspace", "create", "--name", "team-c") == (
            "error: bea lacks permission Microsoft.MachineLearningServices/workspaces/write at scope /")
        bad = _run(admin, "workspace", "create", "--name", "no way", ok=False)
        assert (bad.returncode, bad.stderr) == (2, "error: invalid workspace name 'no way': it has ' '; use 3-33 "
                                                   "letters, digits, '-' or '_', starting with a letter or digit\n")
        assert [w["name"] for w in _json(admin, "workspace", "list")] == ["default", "team-b"]

        # the server started again hosts team-b again, and its deployment serves again
        _run(owner, "server", "stop")
        assert not any(alive(p) for p in b_pids + a_pids)
        _run(owner, "server", "start")
        assert [w["name"] for w in _json(admin, "workspace", "list")] == ["default", "team-b"]
        shown = _json(admin, "online-deployment", "show", "-w", "team-b", "--name", "blue", "--endpoint", "ep-team-b")
        b_pids = wait_until(lambda: [r["pid"] for r in _json(admin, "online-deployment", "show", "-w", "team-b",
                                                             "--name", "blue", "--endpoint", "ep-team-b")["replicas"]
                                     if r["state"] == "ready"], timeout=120)
        assert shown["name"] == "blue" and len(_score(b_uri, b_key)) == 2

        # deleted: its replicas stop, its store and folder go, the primary serves on
        assert _json(admin, "workspace", "delete", "--name", "team-b", "--yes") == {"deleted": "team-b"}
        wait_until(lambda: not any(alive(p) for p in b_pids), timeout=30)
        assert not folder.exists()
        assert [w["name"] for w in _json(admin, "workspace", "list")] == ["default"]
        assert _refused(admin, "online-endpoint", "list", "-w", "team-b") == "error: workspace 'team-b' not found"
        assert httpx.post(b_uri, json={"data": IRIS_ROWS}, headers={"authorization": f"Bearer {b_key}"}).status_code == 404
        wait_until(lambda: _json(admin, "online-deployment", "show", "--name", "blue", "--endpoint", "ep-default")
                   ["provisioning_state"] == "Succeeded", timeout=120)
        assert len(_score(a_uri, a_key)) == 2
        assert _refused(admin, "workspace", "delete", "--name", "default", "--yes").startswith(
            "error: workspace 'default' is the one this server was started on")
        changes = [(a["caller"], a["operation"].rsplit("/", 1)[-1], a["resource"]) for a in
                   json.loads(_run(admin, "activity-log", "list", "-o", "json").stdout) if a["resource"].startswith("workspaces/team")]
        assert ("admin", "write", "workspaces/team-b") in changes and ("admin", "delete", "workspaces/team-b") in changes
        assert ("bea", "write", "workspaces/team-c") in changes   # the refusal is logged too
    finally:
        _stop_servers(fleet_home)
