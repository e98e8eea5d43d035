"""`fleet workspace migrate --to postgresql://...`: a serving workspace's metadata moved from its
SQLite file into a real PostgreSQL server; the server then starts on PostgreSQL and serves the
same endpoints with the same keys. Refusals change nothing."""

from __future__ import annotations

import contextlib
import json
import sqlite3

import pytest

from .helpers import run_cli, wait_until

pytestmark = pytest.mark.slow  # starts a server and PostgreSQL


def _json(*args: str, code: int = 0):
    return json.loads(run_cli(*args, "-o", "json", code=code).stdout or "null")


def test_a_serving_workspace_moves_into_postgresql_and_serves_the_same(fleet_home, postgres_server, models_dir):
    run_cli("model", "register", "--name", "iris", "--path", str(models_dir / "iris"), "--version", "1")
    run_cli("online-endpoint", "create", "--name", "segment-a")
    run_cli("online-deployment", "create", "--name", "blue", "--endpoint", "segment-a", "--model", "iris:1")
    keys = _json("online-endpoint", "get-credentials", "--name", "segment-a")
    target = postgres_server.create_database()
    db_file = fleet_home / "workspaces" / "default" / "workspace.db"

    refused = run_cli("workspace", "migrate", "--to", target, code=1)   # the server runs
    assert "is running; stop it first: fleet server stop -w default" in refused.stderr
    run_cli("server", "stop")
    with contextlib.closing(sqlite3.connect(db_file)) as conn:   # the server's writes folded into the file
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = db_file.stat().st_size

    moved = _json("workspace", "migrate", "--to", target)
    assert moved["to"] == target and moved["rows"]["models"] == 1 and moved["rows"]["deployments"] == 1
    assert db_file.stat().st_size == size          # the SQLite file is left as it was: a backup
    settings = _json("server", "configure")
    assert settings["database_url"] == target

    assert [m["version"] for m in _json("model", "list")] == ["1"]          # starts the server, on PostgreSQL
    assert _json("online-endpoint", "get-credentials", "--name", "segment-a") == keys
    # the first read started the server, which restores the deployment from PostgreSQL
    wait_until(lambda: _json("online-deployment", "show", "--name", "blue", "--endpoint", "segment-a")
               ["provisioning_state"] == "Succeeded", timeout=120)
    run_cli("online-endpoint", "create", "--name", "after")                  # written to PostgreSQL
    assert db_file.stat().st_size == size
    assert {e["name"] for e in _json("online-endpoint", "list")} == {"segment-a", "after"}
    run_cli("server", "stop")

    back = run_cli("workspace", "migrate", "--to", target, code=2)
    assert "already keeps its metadata in" in back.stderr


def test_migrating_into_a_database_that_holds_a_workspace_is_refused_and_changes_nothing(
        fleet_home, postgres_server, models_dir, tmp_path):
    target = postgres_server.create_database()
    run_cli("workspace", "create", "-w", "first", "-o", "none")
    run_cli("model", "register", "--name", "iris", "--path", str(models_dir / "iris"), "-w", "first")
    run_cli("server", "stop", "-w", "first")
    run_cli("workspace", "migrate", "-w", "first", "--to", target)
    run_cli("model", "register", "--name", "other", "--path", str(models_dir / "wine"), "-o", "none")
    run_cli("server", "stop")
    refused = run_cli("workspace", "migrate", "--to", target, code=1)
    line = refused.stderr.strip()   # its first admin and the activity log came along too
    assert line.endswith("): migrate into an empty database") and "already holds a workspace (" in line
    assert "1 models" in line and "1 principals" in line
    assert _json("server", "configure")["database_url"] is None
    assert run_cli("workspace", "migrate", "--to", "mysql://x@y/z", code=2).stderr.strip().startswith("error: ")


def _databases(postgres_server) -> set[str]:
    import psycopg
    with psycopg.connect(postgres_server.url(), autocommit=True) as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database")}


def test_the_workspaces_a_server_hosts_move_with_it_all_or_nothing(fleet_home, postgres_server, models_dir, tmp_path):
    from modelfleet.store import Database
    from modelfleet.store.serving import ServingStore

    from .test_team import _env, _run
    run_cli("server", "start")
    url = _json("server", "status")["url"]
    token = (fleet_home / "workspaces" / "default" / "first-admin.token").read_text().strip()
    admin = _env(tmp_path / "admin", FLEET_SERVER=url, FLEET_TOKEN=token)
    for name in ("team-a", "team-b"):
        _run(admin, "workspace", "create", "--name", name)
    _run(admin, "model", "register", "-w", "team-b", "--name", "iris", "--version", "3", "--path",
         str(models_dir / "iris"))
    _run(admin, "online-endpoint", "create", "-w", "team-a", "--name", "ep-a")
    keys = json.loads(_run(admin, "online-endpoint", "get-credentials", "-w", "team-a", "--name", "ep-a",
                           "-o", "json").stdout)
    run_cli("model", "register", "--name", "wine", "--path", str(models_dir / "wine"), "--version", "1")
    run_cli("server", "stop")

    # the primary's rows cannot go (the target holds a workspace) after the hosted ones went: those
    # databases are dropped again, and the server keeps its SQLite stores
    taken = postgres_server.create_database()
    with contextlib.closing(Database(taken)) as db:
        ServingStore(db).create_endpoint("squatter", {})
    before = _databases(postgres_server)
    refused = run_cli("workspace", "migrate", "--to", taken, code=1).stderr.strip()
    assert "already holds a workspace (1 endpoints)" in refused and "\n" not in refused
    assert _databases(postgres_server) == before
    blocked = postgres_server.create_database()
    squatter = postgres_server.create_database()   # where team-b would go, made by someone else
    import psycopg
    with psycopg.connect(postgres_server.url(), autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{squatter.rsplit("/", 1)[1]}" RENAME TO "{blocked.rsplit("/", 1)[1]}_team-b"')
    before = _databases(postgres_server)
    refused = run_cli("workspace", "migrate", "--to", blocked, code=1).stderr.strip()
    assert refused.endswith("_team-b exists already: the hosted workspace 'team-b' moves into a database made for "
                            "it; drop that one or migrate elsewhere") and "\n" not in refused
    assert _databases(postgres_server) == before and _json("server", "configure")["database_url"] is None

    target = postgres_server.create_database()
    moved = _json("workspace", "migrate", "--to", target)
    assert moved["rows"]["hosted_workspaces"] == 2 and moved["rows"]["models"] == 1
    assert {n: (w["to"], w["rows"]["models"], w["rows"]["endpoints"]) for n, w in moved["workspaces"].items()} == {
        "team-a": (f"{target}_team-a", 0, 1), "team-b": (f"{target}_team-b", 1, 0)}
    run_cli("server", "start")   # on PostgreSQL, hosting what it hosted
    try:
        assert [w["name"] for w in json.loads(_run(admin, "workspace", "list", "-o", "json").stdout)] == [
            "default", "team-a", "team-b"]
        shown = json.loads(_run(admin, "model", "list", "-w", "team-b", "-o", "json").stdout)
        assert [(m["name"], m["version"]) for m in shown] == [("iris", "3")]
        assert json.loads(_run(admin, "online-endpoint", "get-credentials", "-w", "team-a", "--name", "ep-a",
                               "-o", "json").stdout) == keys
        assert [m["name"] for m in _json("model", "list")] == ["wine"]
        _run(admin, "online-endpoint", "create", "-w", "team-b", "--name", "after")   # written to PostgreSQL
        with contextlib.closing(Database(f"{target}_team-b")) as db:
            assert [e["name"] for e in ServingStore(db).endpoints()] == ["after"]
    finally:
        run_cli("server", "stop")
