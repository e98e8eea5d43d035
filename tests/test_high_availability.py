"""Several servers on one workspace (docs/production.md): real server processes sharing a real
PostgreSQL, one leading by the controller's lease, the others following.

These run on local compute, whose replicas are the leading server's own processes: what holds
there is the control plane's (one leader, a takeover within the lease, the same keys, etags and
activity log from every server). Serving through any server on a Ray compute behind nginx is in
tests/test_high_availability_ray.py.
"""

from __future__ import annotations

import json
import os
import signal

import subprocess
import sys
from pathlib import Path

import httpx
import orjson
import pytest

from .conftest import IRIS_ROWS
from .helpers import alive, run_cli, wait_until

pytestmark = pytest.mark.slow
FLEET = str(Path(sys.executable).with_name("fleet"))
LEASE_S = 2.0
IRIS_BODY = json.dumps({"data": IRIS_ROWS}).encode()


class Server:
    """One server of the workspace, reached over HTTP with the workspace's fixed admin token."""

    def __init__(self, url: str, pid: int, token: str):
        self.url, self.pid = url, pid
        self.http = httpx.Client(base_url=url, headers={"authorization": f"Bearer {token}"}, timeout=30)

    def get(self, path: str, **kw):
        r = self.http.get(path, **kw)
        assert r.status_code == 200, r.text
        return r.json()

    def role(self) -> str | None:
        try:
            rows = self.get("/api/servers")
        except (httpx.HTTPError, AssertionError):
            return None
        return next((s["role"] for s in rows if s["pid"] == self.pid), None)

    def score(self, endpoint: str, key: str) -> httpx.Response:
        return self.http.post(f"/endpoints/{endpoint}/score", content=IRIS_BODY,
                              headers={"authorization": f"Bearer {key}", "content-type": "application/json"})


@pytest.fixture
def two_servers(fleet, postgres_server, tmp_path, monkeypatch):
    """A workspace on PostgreSQL with a server and a second one joined to it; the first leads."""
    token_file = tmp_path / "admin-token"
    token_file.write_text("ha-test-admin-token-0123456789")
    token_file.chmod(0o600)
    monkeypatch.setenv("FLEET_DATABASE_URL", postgres_server.create_database())
    fleet.server.configure(admin_token_file=str(token_file), lease_duration_s=LEASE_S)
    first = fleet.server.start()[0]
    a = Server(first["url"], first["pid"], token_file.read_text())
    wait_until(lambda: a.role() == "leader", timeout=10)
    joined = fleet.server.join()
    b = Server(joined["url"], joined["pid"], token_file.read_text())
    wait_until(lambda: b.role() == "follower", timeout=10)
    yield fleet, a, b, token_file.read_text()
    for s in (a, b):
        s.http.close()


def test_two_servers_one_leads_and_fleet_server_list_shows_both(two_servers):
    fleet, a, b, _ = two_servers
    rows = {s["pid"]: s for s in fleet.server.list()}
    assert rows[a.pid]["role"] == "leader" and rows[b.pid]["role"] == "follower"
    assert rows[a.pid]["url"] == a.url and rows[b.pid]["url"] == b.url
    assert {"host", "since", "last_heartbeat", "heartbeat_age_s"} <= set(rows[b.pid])
    assert rows[a.pid]["epoch"] >= 1
    shown = json.loads(run_cli("server", "list", "-o", "json").output)
    assert {s["pid"]: s["role"] for s in shown} == {a.pid: "leader", b.pid: "follower"}


def test_keys_etags_and_the_activity_log_are_the_same_from_either_server(two_servers, models_dir):
    fleet, a, b, _ = two_servers
    fleet.models.register("iris", models_dir / "iris", "1")
    fleet.online_endpoints.create("ha-ep")
    fleet.online_deployments.create("blue", "ha-ep", "iris:1")
    assert a.get("/api/endpoints/ha-ep/keys") == b.get("/api/endpoints/ha-ep/keys")
    assert a.get("/api/endpoints/ha-ep/deployments/blue")["etag"] == \
        b.get("/api/endpoints/ha-ep/deployments/blue")["etag"]

    # a key made on the follower is the key the leader's gateway takes, and the old one is refused
    old = a.get("/api/endpoints/ha-ep/keys")["primaryKey"]
    r = b.http.post("/api/endpoints/ha-ep/regenerate-keys", json={"key_type": "primary"})
    assert r.status_code == 200, r.text
    regenerated = r.headers["x-request-id"]
    new = r.json()["primaryKey"]
    assert a.get("/api/endpoints/ha-ep/keys")["primaryKey"] == new
    wait_until(lambda: a.score("ha-ep", new).status_code == 200, timeout=10)
    assert a.score("ha-ep", old).status_code == 401

    # an update based on an etag read from one server is refused by the other once it changed
    etag = b.get("/api/endpoints/ha-ep/deployments/blue")["etag"]
    body = {**a.get("/api/endpoints/ha-ep/deployments/blue")}
    fleet.online_deployments.update("blue", "ha-ep", description="changed through the leader")
    stale = b.http.put("/api/endpoints/ha-ep/deployments/blue", headers={"if-match": f'"{etag}"'},
                       json={"model": body["model"], "description": "from a stale read"})
    assert stale.status_code == 412, stale.text
    updated = a.http.put("/api/endpoints/ha-ep/deployments/blue", json={"model": body["model"],
                                                                       "description": "through a"})
    assert updated.status_code == 200, updated.text

    # the activity log is rows: what either server took in, the other lists with its caller and result
    log_a, log_b = a.get("/api/activity-log"), b.get("/api/activity-log")
    assert log_a == log_b
    by_id = {e["correlation_id"]: e for e in log_a}
    for request, caller, result, status in ((regenerated, "admin", "Succeeded", 200),
                                            (stale.headers["x-request-id"], "admin", "Failed", 412),
                                            (updated.headers["x-request-id"], "admin", "Succeeded", 200)):
        entry = by_id[request]
        assert (entry["caller"], entry["status"], entry["http_status"]) == (caller, result, status), entry
    assert by_id[stale.headers["x-request-id"]]["message"]   # the refusal's one line


def test_kill_9_of_the_leader_the_follower_takes_over_and_the_restarted_one_follows(two_servers, models_dir):
    fleet, a, b, token = two_servers
    fleet.models.register("iris", models_dir / "iris", "1")
    fleet.online_endpoints.create("ha-ep")
    fleet.online_deployments.create("blue", "ha-ep", "iris:1")
    key = a.get("/api/endpoints/ha-ep/keys")["primaryKey"]
    assert a.score("ha-ep", key).status_code == 200

    os.kill(a.pid, signal.SIGKILL)
    wait_until(lambda: not alive(a.pid), timeout=10)
    wait_until(lambda: b.role() == "leader", timeout=10)   # within the lease and a renewal
    # the new leader restores the deployment on its own replicas and serves it
    wait_until(lambda: b.score("ha-ep", key).status_code == 200, timeout=60)
    wait_until(lambda: b.get("/api/endpoints/ha-ep/deployments/blue")["provisioning_state"] == "Succeeded",
               timeout=30)
    def roles():
        return {s["pid"]: s["role"] for s in b.get("/api/servers")}
    wait_until(lambda: roles() == {a.pid: "unresponsive", b.pid: "leader"}, timeout=10)   # silent 2 leases

    # restarted, the killed server joins as a follower: the lease stays where it is
    restarted = fleet.server.start()[0]
    c = Server(restarted["url"], restarted["pid"], token)
    wait_until(lambda: c.role() == "follower", timeout=10)
    assert b.role() == "leader"
    c.http.close()


def test_a_joined_server_on_sqlite_is_refused_in_one_line(fleet):
    fleet.server.start()
    r = subprocess.run([FLEET, "server", "start", "--join"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "SQLite, which serves one server" in lines[0], r.stderr
    assert not list((fleet.workspace.run_dir / "joined").glob("*.json"))


def test_the_run_files_of_joined_servers_are_private(two_servers):
    fleet, a, b, _ = two_servers
    joined = list((fleet.workspace.run_dir / "joined").glob("*.json"))
    assert [orjson.loads(f.read_bytes())["pid"] for f in joined] == [b.pid]
    assert all(f.stat().st_mode & 0o077 == 0 for f in joined)


def test_a_workspace_made_on_one_server_is_served_by_the_other_until_it_is_deleted(two_servers):
    _, a, b, _ = two_servers
    r = a.http.put("/api/workspaces/team-b")
    assert r.status_code == 200, r.text
    wait_until(lambda: "team-b" in [w["name"] for w in b.get("/api/workspaces")], timeout=30)
    r = b.http.put("/workspaces/team-b/api/endpoints/ep-on-b", json={})
    assert r.status_code == 200, r.text
    assert [e["name"] for e in a.get("/workspaces/team-b/api/endpoints")] == ["ep-on-b"]
    assert a.get("/api/endpoints") == []   # the primary holds none of it
    r = a.http.delete("/api/workspaces/team-b")
    assert r.status_code == 200, r.text
    wait_until(lambda: b.http.get("/workspaces/team-b/api/endpoints").status_code == 404, timeout=30)
    assert [w["name"] for w in b.get("/api/workspaces")] == [a.get("/api/health")["workspace"]]
