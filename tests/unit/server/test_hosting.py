"""Several workspaces on one server, through the real server app in process (tests/inprocess.py's
InProcessHost), on SQLite and PostgreSQL: made and deleted over the API, each under its own
/workspaces/NAME prefix with its own store and folder, hidden from callers without a role on it,
and hosted again when the server starts again."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from modelfleet.domain.errors import AlreadyExists, Conflict, Forbidden, InvalidInput, NotFound
from modelfleet.store.hosted_workspaces import CREATING, HostedWorkspaceStore

from ...inprocess import InProcessHost

pytestmark = pytest.mark.databases


@pytest.fixture
def primary_url(request, database):
    return request.getfixturevalue("postgres_server").create_database() if database == "postgresql" else None


@pytest.fixture
def host(tmp_path, monkeypatch, primary_url):
    for k in ("FLEET_SERVER", "FLEET_TOKEN", "FLEET_WORKSPACE", "FLEET_DATABASE_URL"):
        monkeypatch.delenv(k, raising=False)
    server = InProcessHost(tmp_path, primary_url)
    yield server
    server.close()


def _store_exists(host: InProcessHost, name: str) -> bool:
    """Whether the hosted workspace's database is still there (its SQLite file, or its PostgreSQL database)."""
    db = host.app.primary.db
    if not db.is_postgresql:
        return (host.ws.path / "workspaces" / name / "workspace.db").exists()
    with db.read() as conn:
        wanted = f"{db.engine.url.database}_{name}"
        return conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": wanted}).first() is not None


def test_a_workspace_made_over_the_api_has_its_own_prefix_store_and_folder(host):
    admin = host.fleet()
    made = admin.workspaces.create("team-b")
    assert (made["name"], made["primary"], made["url"]) == ("team-b", False, f"{host.app.server.url}/workspaces/team-b")
    assert (host.ws.path / "workspaces" / "team-b" / "artifacts").parent.is_dir() and _store_exists(host, "team-b")
    assert [(w["name"], w["current"]) for w in admin.workspaces.list()] == [("default", True), ("team-b", False)]

    b = host.fleet(workspace="team-b")
    assert b.workspace_name == "team-b"
    b.online_endpoints.create("ep-in-b")
    admin.online_endpoints.create("ep-in-default")
    assert [e.name for e in b.online_endpoints.list()] == ["ep-in-b"]
    assert [e.name for e in admin.online_endpoints.list()] == ["ep-in-default"]
    assert b.online_endpoints.get("ep-in-b")["scoring_uri"] == f"{host.app.server.url}/workspaces/team-b/endpoints/ep-in-b/score"
    assert admin.online_endpoints.get("ep-in-default")["scoring_uri"] == f"{host.app.server.url}/endpoints/ep-in-default/score"
    # the primary answers under its own name too
    assert [e.name for e in host.fleet(workspace="default").online_endpoints.list()] == ["ep-in-default"]
    with pytest.raises(AlreadyExists, match="workspace 'team-b' already exists"):
        admin.workspaces.create("team-b")
    changes = [(a["operation"], a["resource"]) for a in admin.activity_log.list()]
    assert ("Microsoft.MachineLearningServices/workspaces/write", "workspaces/team-b") in changes
    assert ("Microsoft.MachineLearningServices/workspaces/onlineEndpoints/write",
            "workspaces/team-b/endpoints/ep-in-b") in changes


def test_a_caller_with_a_role_on_one_workspace_learns_nothing_of_the_others(host):
    admin = host.fleet()
    admin.workspaces.create("team-b")
    admin.online_endpoints.create("secret-ep")
    token = admin.users.create("bea")["token"]
    admin.role_assignments.create("bea", "AzureML Data Scientist", "/workspaces/team-b")
    bea = host.fleet(token=token, workspace="team-b")
    assert [(w["name"], w["current"]) for w in bea.workspaces.list()] == [("team-b", True)]
    bea.online_endpoints.create("bea-ep")
    on_primary = host.fleet(token=token)
    missing = "workspace 'default' not found"
    for call in (on_primary.online_endpoints.list, lambda: on_primary.online_endpoints.get("secret-ep"),
                 lambda: bea.workspaces.get("default")):
        with pytest.raises(NotFound, match=missing):
            call()
    admin.workspaces.create("team-c")
    with host.http(token) as c:   # a workspace nobody made and one without a role look the same
        for path in ("/workspaces/default/api/endpoints", "/workspaces/team-c/api/endpoints",
                     "/workspaces/team-c/api/identity", "/workspaces/nowhere/api/endpoints",
                     "/workspaces/nowhere/api/identity"):
            r = c.get(path)
            assert r.status_code == 404 and r.json()["error"]["message"] == \
                f"workspace {path.split('/')[2]!r} not found", (path, r.text)
        for path in ("/endpoints/ep/score", "/v2/models/ep/infer", "/endpoints/ep/score/x"):
            for method in ("GET", "POST"):
                seen = [c.request(method, f"/workspaces/{w}{path}", json={"data": [[1]]}) for w in ("team-c", "nowhere")]
                assert [(r.status_code, r.json()["error"]) for r in seen].count(
                    (seen[0].status_code, seen[0].json()["error"])) == 2, (method, path, [r.text for r in seen])
    # a Data Scientist of b may not delete b, nor assign roles there
    with pytest.raises(Forbidden, match="bea lacks permission Microsoft.MachineLearningServices/workspaces/delete "
                                        "at scope /workspaces/team-b"):
        bea.workspaces.delete("team-b")


def test_a_reader_at_the_root_cannot_make_a_workspace_and_a_bad_name_changes_nothing(host):
    admin = host.fleet()
    token = admin.users.create("rita")["token"]
    admin.role_assignments.create("rita", "Reader", "/")
    rita = host.fleet(token=token)
    with pytest.raises(Forbidden, match="^rita lacks permission Microsoft.MachineLearningServices/workspaces/write "
                                        "at scope /$"):
        rita.workspaces.create("team-r")
    before = list((host.ws.path / "workspaces").iterdir()) if (host.ws.path / "workspaces").exists() else []
    for bad, why in (("a!", "has '!'"), ("ab", "is 2 characters long"), ("-ab", "does not start with"),
                     ("x" * 34, "is 34 characters long")):
        with pytest.raises(InvalidInput, match=f"^invalid workspace name '{bad}': it {why}"):
            admin.workspaces.create(bad)
    with pytest.raises(AlreadyExists, match="workspace 'default' already exists"):
        admin.workspaces.create("default")
    assert [w["name"] for w in admin.workspaces.list()] == ["default"]
    after = list((host.ws.path / "workspaces").iterdir()) if (host.ws.path / "workspaces").exists() else []
    assert after == before


def test_deleting_a_workspace_removes_its_store_and_folder_and_spares_the_primary(host):
    admin = host.fleet()
    admin.workspaces.create("team-b")
    host.fleet(workspace="team-b").online_endpoints.create("ep-in-b")
    admin.online_endpoints.create("ep-in-default")
    with pytest.raises(Conflict, match="workspace 'default' is the one this server was started on"):
        admin.workspaces.delete("default")
    assert admin.workspaces.delete("team-b") == {"deleted": "team-b"}
    assert not (host.ws.path / "workspaces" / "team-b").exists() and not _store_exists(host, "team-b")
    with pytest.raises(NotFound, match="workspace 'team-b' not found"):
        admin.workspaces.delete("team-b")
    with pytest.raises(NotFound, match="workspace 'team-b' not found"):
        host.fleet(workspace="team-b").online_endpoints.list()
    assert [e.name for e in admin.online_endpoints.list()] == ["ep-in-default"]
    # made again, it starts empty
    admin.workspaces.create("team-b")
    assert host.fleet(workspace="team-b").online_endpoints.list() == []


def test_the_server_started_again_hosts_its_workspaces_and_clears_a_create_that_crashed(tmp_path, monkeypatch,
                                                                                       primary_url):
    for k in ("FLEET_SERVER", "FLEET_TOKEN", "FLEET_WORKSPACE", "FLEET_DATABASE_URL"):
        monkeypatch.delenv(k, raising=False)
    first = InProcessHost(tmp_path, primary_url)
    try:
        first.fleet().workspaces.create("team-b")
        first.fleet(workspace="team-b").online_endpoints.create("ep-in-b")
        # a create that died after its row and folder were made
        HostedWorkspaceStore(first.app.primary.db).claim("half-made", "admin")
        (first.ws.path / "workspaces" / "half-made").mkdir(parents=True)
        assert "half-made" not in [w["name"] for w in first.fleet().workspaces.list()]
    finally:
        first.close()
    again = InProcessHost(tmp_path, primary_url)
    try:
        assert [w["name"] for w in again.fleet().workspaces.list()] == ["default", "team-b"]
        assert [e.name for e in again.fleet(workspace="team-b").online_endpoints.list()] == ["ep-in-b"]
        assert not (again.ws.path / "workspaces" / "half-made").exists()
        assert [r["name"] for r in HostedWorkspaceStore(again.app.primary.db).list()] == ["team-b"]
        assert CREATING not in {r["state"] for r in HostedWorkspaceStore(again.app.primary.db).list()}
    finally:
        again.close()


def test_a_hosted_workspace_has_no_server_settings_of_its_own_and_its_open_endpoints_count(host):
    host.fleet().workspaces.create("team-b")
    with host.http() as c:
        for method in ("GET", "PATCH"):
            r = c.request(method, "/workspaces/team-b/api/server/settings", json={"access_log": False})
            assert r.status_code == 409 and r.json()["error"]["message"] == (
                "workspace 'team-b' uses its server's settings: show or change them on the server's primary workspace")
        assert c.get("/api/server/settings").status_code == 200
        r = c.put("/workspaces/team-b/api/endpoints/open-ep", json={"auth_mode": "none"})
        assert r.status_code == 200, r.text
    # what the server checks before listening beyond loopback
    assert host.app.hosting.open_endpoints() == ["team-b/open-ep"]


def test_a_caller_without_a_role_gets_the_same_answers_from_a_hosted_workspace_as_from_one_nobody_made(host):
    admin = host.fleet()
    admin.workspaces.create("team-b")
    host.fleet(workspace="team-b").online_endpoints.create("secret-ep")
    token = admin.users.create("nora")["token"]   # signed in, no role anywhere
    pages = [("GET", p) for p in ("/docs", "/openapi.json", "/dashboard", "/dashboard/", "/dashboard/dashboard.js",
                                  "/api/health", "/api/endpoints", "/api/events", "/api/identity", "/metrics",
                                  "/nothing", "/v2/health/ready", "/v2/models/secret-ep")]
    pages += [("POST", "/endpoints/secret-ep/score"), ("POST", "/v2/models/secret-ep/infer")]

    def seen(r) -> tuple:
        body = re.sub(rb'"request_id":"[^"]*"', b"", r.content.replace(b"team-b", b"team-x"))
        return r.status_code, r.headers.get("location", "").replace("team-b", "team-x"), body
    for who in (None, token):
        with host.http(who) as c:
            for method, page in pages:
                hosted = c.request(method, f"/workspaces/team-b{page}", json={"data": [[1]]})
                assert seen(hosted) == seen(c.request(method, f"/workspaces/team-x{page}", json={"data": [[1]]})), \
                    (who, page)
                if page.startswith(("/api/", "/metrics")):
                    assert hosted.status_code == (401 if who is None else 404), (who, page)
    with host.http() as c:   # the API's shape under the prefix tells none of its endpoints
        assert "secret-ep" not in c.get("/workspaces/team-b/openapi.json").text
        assert c.get("/workspaces/team-b/metrics").status_code == 200


def test_a_default_datastore_the_server_refuses_leaves_no_workspace(host):
    admin = host.fleet()
    document = {"name": "team_store", "type": "azure_blob", "account_name": "devstoreaccount1",
                "container_name": "Bad_Name", "credentials": {"account_key": "a2V5"}}
    with pytest.raises(InvalidInput, match="container_name: must be 3 to 63"):
        admin.workspaces.create("team-d", document)
    with pytest.raises(InvalidInput, match="workspaceartifactstore"):
        admin.workspaces.create("team-d", {**document, "name": "workspaceartifactstore", "container_name": "team"})
    assert [w["name"] for w in admin.workspaces.list()] == ["default"]
    assert not (host.ws.path / "workspaces" / "team-d").exists()
