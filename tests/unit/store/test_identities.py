"""Users, service principals, tokens kept as hashes, role assignments and the activity log on a
real SQLite file: what the server's authentication and authorization will read."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from modelfleet.domain.errors import AlreadyExists, Conflict, NotFound
from modelfleet.domain.tokens import looks_like_token, token_hash
from modelfleet.store.activity import Activity, ActivityStore
from modelfleet.store.db import utcnow
from modelfleet.store.identities import ROOT_SCOPE, IdentityStore

WS = "/workspaces/default"


@pytest.fixture
def ids(db) -> IdentityStore:
    return IdentityStore(db)


def test_a_principal_gets_a_first_token_shown_once_and_kept_only_as_its_hash(ids, db):
    alice, token = ids.create_principal("alice", "user", created_by="admin")
    assert alice["kind"] == "user" and looks_like_token(token)
    assert ids.authenticate(token) == "alice"
    with db.read() as conn:
        stored = [tuple(r) for r in conn.execute(sa.text("SELECT * FROM tokens"))]
    assert all(token not in str(v) for row in stored for v in row)          # never the token itself
    assert token_hash(token) in {row[0] for row in stored}
    assert [t["name"] for t in ids.tokens("alice")] == ["default"]
    assert "hash" not in ids.tokens("alice")[0]
    with pytest.raises(AlreadyExists, match="^user 'alice' already exists$"):
        ids.create_principal("alice", "user", created_by="admin")


def test_a_revoked_token_fails_at_once_and_an_expired_one_never_works(ids):
    ids.create_principal("ci", "service_principal", created_by="admin")
    _, kept = ids.create_token("ci", "nightly")
    _, revoked = ids.create_token("ci", "old")
    ids.revoke_token("ci", "old")
    assert ids.authenticate(revoked) is None and ids.authenticate(kept) == "ci"
    _, expired = ids.create_token("ci", "gone", expires_in=dt.timedelta(seconds=-1))
    assert ids.authenticate(expired) is None
    assert ids.authenticate("mft_" + "x" * 43) is None
    with pytest.raises(NotFound, match="^ci has no token named 'old'$"):
        ids.revoke_token("ci", "old")
    with pytest.raises(AlreadyExists, match="already has a token named 'nightly'"):
        ids.create_token("ci", "nightly")


def test_a_tokens_last_use_is_recorded(ids):
    _, token = ids.create_principal("bob", "user", created_by="admin")
    assert ids.tokens("bob")[0]["last_used_at"] is None
    ids.authenticate(token)
    assert ids.tokens("bob")[0]["last_used_at"] is not None


def test_roles_at_a_scope_include_those_at_the_root_and_deleting_a_principal_takes_everything(ids):
    ids.create_principal("admin", "user", created_by="bootstrap")
    ids.assign("admin", "Owner", ROOT_SCOPE, created_by="bootstrap")
    _, token = ids.create_principal("alice", "user", created_by="admin")
    ids.assign("alice", "Reader", WS, created_by="admin")
    ids.assign("alice", "AzureML Data Scientist", "/workspaces/other", created_by="admin")
    assert ids.roles_at("alice", WS) == ["Reader"]
    assert ids.roles_at("admin", WS) == ["Owner"]
    assert {a["scope"] for a in ids.assignments("alice")} == {WS, "/workspaces/other"}
    with pytest.raises(AlreadyExists, match="already has role 'Reader' at scope"):
        ids.assign("alice", "Reader", WS, created_by="admin")
    ids.delete_principal("alice")
    assert ids.authenticate(token) is None and ids.assignments("alice") == []
    with pytest.raises(NotFound):
        ids.principal("alice")


def test_nobody_may_remove_the_last_owner(ids):
    ids.create_principal("admin", "user", created_by="bootstrap")
    ids.assign("admin", "Owner", ROOT_SCOPE, created_by="bootstrap")
    with pytest.raises(Conflict, match="without an Owner"):
        ids.unassign("admin", "Owner", ROOT_SCOPE)
    with pytest.raises(Conflict, match="without an Owner"):
        ids.delete_principal("admin")
    ids.create_principal("carol", "user", created_by="admin")
    ids.assign("carol", "Owner", ROOT_SCOPE, created_by="admin")
    ids.unassign("admin", "Owner", ROOT_SCOPE)
    assert ids.roles_at("admin", WS) == []


def test_the_activity_log_appends_and_filters_by_time_and_caller(db):
    log = ActivityStore(db)
    first = Activity(utcnow(), "alice", "Microsoft.MachineLearningServices/workspaces/models/write",
                     "models/iris/versions/1", "Succeeded", 200, "10.0.0.2", "r-1")
    log.append(first)
    log.append(Activity(utcnow(), "ci", "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/delete",
                        "onlineEndpoints/segment-a", "Failed", 403, "10.0.0.3", "r-2",
                        "ci lacks .../onlineEndpoints/delete"))
    assert [a.caller for a in log.list()] == ["alice", "ci"]
    assert log.list(caller="alice") == [first]
    assert log.list(since="9999") == []
