"""Who may do what, through the real control API in process (tests/inprocess.py), on SQLite and
on PostgreSQL: every route declares its Azure action, each built-in role means what Azure says,
listings hide a workspace from a caller without a role there, tokens are refused the request after
their revocation, scoring keys never manage, and failed attempts are rate-limited."""

from __future__ import annotations

import datetime as dt
import re

import httpx
import pytest
from fastapi.routing import APIRoute

from modelfleet.domain.errors import Conflict, Forbidden, NotFound, RateLimited, Unauthorized
from modelfleet.server.http.permissions import ROUTES, SERVER

from ....inprocess import URL, InProcessServer

pytestmark = pytest.mark.databases


@pytest.fixture
def team(tmp_path, monkeypatch, request, database):
    """A server with the first admin and three users: a Reader, a Data Scientist, a Compute Operator."""
    monkeypatch.delenv("FLEET_SERVER", raising=False)
    monkeypatch.delenv("FLEET_TOKEN", raising=False)
    url = request.getfixturevalue("postgres_server").create_database() if database == "postgresql" else None
    server = InProcessServer(tmp_path, url, failed_token_attempts_per_minute=1000)
    admin = server.fleet()
    tokens = {}
    for user, role in (("rita", "Reader"), ("dana", "AzureML Data Scientist"), ("otto", "AzureML Compute Operator")):
        tokens[user] = admin.users.create(user)["token"]
        admin.role_assignments.create(user, role)
    tokens["nobody"] = admin.users.create("nobody")["token"]
    team = {"server": server, "admin": admin, **{u: server.fleet(token=t) for u, t in tokens.items()},
            "tokens": tokens}
    yield team
    for f in team.values():
        if hasattr(f, "close") and f is not server:
            f.close()
    server.close()


def _raw(server: InProcessServer, token: str | None) -> httpx.Client:
    headers = {"authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.Client(base_url=URL, transport=server.transport, headers=headers)


def _declared(server: InProcessServer) -> list[tuple[str, str, object]]:
    """(method, path, permission) of every route the app serves."""
    return [(m, r.path_format, ROUTES[(m, r.path_format)]) for r in server.app.routes if isinstance(r, APIRoute)
            for m in sorted(r.methods)]


def _concrete(path: str) -> str:
    return re.sub(r"\{(kind)\}", "models", re.sub(r"\{(?!kind)[^}]+\}", "ep-x", path))


def _model(admin, tmp_path):
    d = tmp_path / "iris"
    d.mkdir(exist_ok=True)
    (d / "model.joblib").write_bytes(b"weights")
    return admin.models.register("iris", d, "1")


def test_every_route_declares_its_azure_action(tmp_path):
    """The routes of the whole server as `serve` builds it (no socket, no process started)."""
    from modelfleet.schema import server_settings
    from modelfleet.schema.workspace import Workspace
    from modelfleet.server.app import ServerApp
    ws = Workspace("routes", tmp_path / "ws")
    ws.path.mkdir(parents=True)
    app = ServerApp(ws, server_settings.merged(ws, {}), 0, "launcher-token").primary
    try:
        routes = [(m, r.path_format) for r in app.api.routes if isinstance(r, APIRoute) for m in r.methods]
    finally:
        app.telemetry.close()
        app.db.close()
    assert len(routes) > 60 and [r for r in routes if r not in ROUTES] == []


def test_a_route_missing_from_the_table_is_refused_to_everyone(team):
    app = team["server"].app

    @app.get("/api/undeclared")
    async def undeclared() -> dict:
        return {"secret": 1}
    with _raw(team["server"], team["server"].api_options and "unit-test-admin-token") as c:
        r = c.get("/api/undeclared")
    assert r.status_code == 403 and "no permission is declared" in r.json()["error"]["message"]


def test_a_reader_lists_and_shows_but_every_write_is_403_naming_the_permission(team, tmp_path):
    admin, rita = team["admin"], team["rita"]
    _model(admin, tmp_path)
    admin.online_endpoints.create("ep-x")
    assert [m.name for m in rita.models.list()] == ["iris"]
    assert rita.online_endpoints.get("ep-x").name == "ep-x"
    assert [e.name for e in rita.online_endpoints.list()] == ["ep-x"]
    assert rita.role_assignments.list()   # who may do what is readable too
    with pytest.raises(Forbidden, match=r"rita lacks permission .*onlineEndpoints/listKeys/action at scope /workspaces/unit"):
        rita.online_endpoints.get_keys("ep-x")
    writes = [(m, p, perm) for m, p, perm in _declared(team["server"])
              if not perm.is_read and perm.role_needed and not perm.public and perm.scope != SERVER]
    assert len(writes) >= 25
    with _raw(team["server"], team["tokens"]["rita"]) as c:
        for method, path, perm in writes:
            r = c.request(method, _concrete(path), json={})
            assert r.status_code == 403, (method, path, r.status_code, r.text)
            message = r.json()["error"]["message"]
            assert message == f"rita lacks permission {perm.action_for({'kind': 'models'})} at scope /workspaces/unit"
    assert admin.online_endpoints.get("ep-x").name == "ep-x"   # nothing changed


def test_a_data_scientist_deploys_but_cannot_create_a_compute_or_assign_roles(team, tmp_path):
    admin, dana = team["admin"], team["dana"]
    _model(dana, tmp_path)
    dana.online_endpoints.create("ep-d")
    dana.online_deployments.create("blue", endpoint="ep-d", model="iris:1")
    assert dana.online_endpoints.get_keys("ep-d")["primaryKey"]
    with pytest.raises(Forbidden, match="dana lacks permission Microsoft.MachineLearningServices/workspaces/computes/write"):
        dana.computes.create("ray-x")
    with pytest.raises(Forbidden, match="dana lacks permission Microsoft.Authorization/roleAssignments/write"):
        dana.role_assignments.create("rita", "Owner")
    with pytest.raises(Forbidden, match="workspaces/write at scope"):
        dana.server.configure(access_log=False)
    with pytest.raises(Forbidden, match="Modelfleet.Identity/principals/write at scope /"):
        dana.users.create("mallory")
    with pytest.raises(Forbidden, match="principals/write"):   # no token in another's name
        dana.tokens.create("mine", principal="admin")
    assert [a["roleDefinitionName"] for a in admin.role_assignments.list("rita")] == ["Reader"]


def test_a_compute_operator_manages_computes_but_nothing_else(team):
    otto = team["otto"]
    assert otto.computes.list() == []
    roles = {r["roleName"]: r for r in otto.role_assignments.definitions()}   # anyone may read what roles mean
    assert roles["AzureML Compute Operator"]["permissions"][0]["actions"][0].endswith("computes/*")
    with pytest.raises(Forbidden, match="otto lacks permission .*onlineEndpoints/read"):
        otto.online_endpoints.list()


def test_listings_hide_a_workspace_from_a_caller_without_a_role_there(team):
    team["admin"].online_endpoints.create("ep-secret")
    nobody = team["nobody"]
    for call in (nobody.online_endpoints.list, lambda: nobody.online_endpoints.get("ep-secret"),
                 lambda: nobody.online_endpoints.get("ep-none"), nobody.models.list):
        with pytest.raises(NotFound) as e:
            call()
        assert e.value.message == "workspace 'unit' not found"   # the same answer whatever exists
    assert nobody.users.me()["name"] == "nobody"   # who they are, they may ask


def test_a_revoked_token_fails_on_its_next_request(team):
    admin = team["admin"]
    made = team["rita"].tokens.create("ci", expires_in="30d")
    assert made["token"].startswith("mft_") and made["expires_at"]
    with team["server"].fleet(token=made["token"]) as ci:
        assert ci.users.me()["name"] == "rita"
        admin.tokens.revoke("ci", principal="rita")
        with pytest.raises(Unauthorized, match="missing, invalid, expired or revoked token"):
            ci.online_endpoints.list()
    assert [t["name"] for t in team["rita"].tokens.list()] == ["default"]


def test_a_deleted_user_and_an_expired_token_are_refused(team):
    server, admin = team["server"], team["admin"]
    _, expired = server.controller.stores.identities.create_token("dana", "old", dt.timedelta(seconds=-1))
    for token in (expired, team["tokens"]["otto"]):
        if token == team["tokens"]["otto"]:
            admin.users.delete("otto")
        with server.fleet(token=token) as f, pytest.raises(Unauthorized):
            f.users.me()


def test_a_scoring_key_is_refused_on_every_management_route(team):
    admin = team["admin"]
    admin.online_endpoints.create("ep-x")
    key = admin.online_endpoints.get_keys("ep-x")["primaryKey"]
    with _raw(team["server"], key) as c:
        for method, path, perm in _declared(team["server"]):
            if perm.public or path == "/metrics":
                continue
            r = c.request(method, _concrete(path), json={})
            assert r.status_code in (401, 403), (method, path, r.status_code)
    assert admin.online_endpoints.get_keys("ep-x")["primaryKey"] == key


def test_the_last_owner_cannot_be_removed_and_owners_assign_at_the_root(team):
    admin = team["admin"]
    with pytest.raises(Conflict, match="without an Owner"):
        admin.role_assignments.delete("admin", "Owner", scope="/")
    admin.role_assignments.create("dana", "owner", scope="/")
    assert {a["scope"] for a in admin.role_assignments.list("dana")} == {"/", "/workspaces/unit"}
    team["dana"].role_assignments.delete("admin", "Owner", scope="/")   # now dana is the Owner
    with pytest.raises(Conflict):
        team["dana"].users.delete("dana")
    from modelfleet.domain.errors import InvalidInput
    with pytest.raises(InvalidInput, match="--scope '/workspaces/other'"):
        team["dana"].role_assignments.create("rita", "Reader", scope="/workspaces/other")
    with pytest.raises(InvalidInput, match="--role 'Superuser': not a built-in role"):
        team["dana"].role_assignments.create("rita", "Superuser")


def test_failed_token_attempts_are_rate_limited_per_address(tmp_path, monkeypatch):
    monkeypatch.delenv("FLEET_SERVER", raising=False)
    server = InProcessServer(tmp_path, failed_token_attempts_per_minute=5)
    try:
        with _raw(server, "mft_" + "x" * 43) as bad, _raw(server, "unit-test-admin-token") as good, \
                _raw(server, None) as none:
            assert [none.get("/api/endpoints").status_code for _ in range(10)] == [401] * 10   # no guess: not counted
            assert [bad.get("/api/endpoints").status_code for _ in range(5)] == [401] * 5
            r = bad.get("/api/endpoints")
            assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
            assert r.json()["error"]["message"].startswith("too many failed token attempts from 127.0.0.1")
            assert good.get("/api/endpoints").status_code == 429   # a hit during the block would tell itself apart
        with server.fleet() as f, pytest.raises(RateLimited):
            f.online_endpoints.list()
    finally:
        server.close()


def test_the_activity_log_has_every_change_and_every_refused_one(team, tmp_path):
    admin, rita = team["admin"], team["rita"]
    admin.online_endpoints.create("ep-a")
    with pytest.raises(Forbidden):
        rita.online_endpoints.delete("ep-a")
    rita.online_endpoints.list()   # a read: not a change
    with _raw(team["server"], "wrong") as c:
        assert c.delete("/api/endpoints/ep-a").status_code == 401
    entries = admin.activity_log.list(since="1h")
    made = [e for e in entries if e["resource"] == "endpoints/ep-a"]
    assert [(e["caller"], e["operation"].rsplit("workspaces/", 1)[1], e["status"], e["http_status"]) for e in made] == [
        ("admin", "onlineEndpoints/write", "Succeeded", 200),
        ("rita", "onlineEndpoints/delete", "Failed", 403),
        ("(unauthenticated)", "onlineEndpoints/delete", "Failed", 401)]
    assert made[1]["message"].startswith("rita lacks permission") and made[0]["client"] == "127.0.0.1"
    assert all(len(e["correlation_id"]) == 16 for e in made)
    assert all(e["caller"] == "rita" for e in admin.activity_log.list(caller="rita"))
    lines = admin.activity_log.access_log_lines(caller="rita").splitlines()
    import json
    shipped = json.loads(lines[-1])
    assert shipped["path"] == "/api/endpoints/ep-a" and shipped["status"] == 403 and shipped["caller"] == "rita"
    assert shipped["method"] == "DELETE" and shipped["request_id"] == made[1]["correlation_id"]
    with pytest.raises(Forbidden, match="eventtypes/values/read"):
        team["dana"].activity_log.list()   # Azure's activity log is not a data scientist's


def test_the_first_admin_is_an_owner_whose_token_is_kept_0600(team):
    server = team["server"]
    token_file = server.ws.first_admin_token_file
    assert token_file.stat().st_mode & 0o777 == 0o600
    with server.fleet(token=token_file.read_text().strip()) as first:
        me = first.users.me()
    assert me["name"] == "admin" and [(a["roleDefinitionName"], a["scope"]) for a in me["role_assignments"]] == [
        ("Owner", "/")]
    from modelfleet.server import first_admin
    assert first_admin.bootstrap(server.controller.stores.identities, token_file) is None   # once only


def test_bad_identity_input_is_one_line_naming_the_field_and_changes_nothing(team):
    from modelfleet.domain.errors import AlreadyExists, InvalidInput
    admin = team["admin"]
    with pytest.raises(InvalidInput, match="--name 'al ice'"):
        admin.users.create("al ice")
    with pytest.raises(InvalidInput, match="--expires-in '0d'"):
        admin.users.create("alice", expires_in="0d")
    with pytest.raises(InvalidInput, match="--expires-in '3 weeks'"):
        admin.tokens.create("ci", expires_in="3 weeks")
    with pytest.raises(AlreadyExists, match="'rita' already exists"):
        admin.users.create("rita")
    with pytest.raises(NotFound, match="'ghost' not found"):
        admin.role_assignments.create("ghost", "Reader")
    assert [p["name"] for p in admin.users.list()] == ["admin", "dana", "nobody", "otto", "rita"]
    assert [t["name"] for t in admin.tokens.list()] == ["first-admin"]   # the launcher's is not stored
