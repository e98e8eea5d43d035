"""The controller's lease and its fencing token: the rule alone, then on a real PostgreSQL (where
several servers share a workspace) and on SQLite (one server)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from modelfleet.domain.errors import LeaseLost
from modelfleet.store import Database
from modelfleet.store.leases import Fence, Lease, LeaseStore, decide
from modelfleet.store.schema import leases
from modelfleet.store.serving import ServingStore


def test_decide_takes_a_free_lease_at_epoch_one():
    assert decide(None, "a", 100.0, 6.0) == Lease("a", 1, 100.0, 106.0)


def test_decide_renews_the_holders_lease_and_keeps_its_epoch_and_since():
    assert decide(Lease("a", 3, 90.0, 101.0), "a", 100.0, 6.0) == Lease("a", 3, 90.0, 106.0)


def test_decide_refuses_a_running_lease_of_another_server():
    assert decide(Lease("a", 3, 90.0, 101.0), "b", 100.0, 6.0) is None


def test_decide_takes_a_lapsed_lease_with_the_next_epoch_even_its_own():
    assert decide(Lease("a", 3, 90.0, 100.0), "b", 100.0, 6.0) == Lease("b", 4, 100.0, 106.0)
    assert decide(Lease("a", 3, 90.0, 99.0), "a", 100.0, 6.0) == Lease("a", 4, 100.0, 106.0)


@pytest.fixture
def postgres_db(postgres_server):
    d = Database(postgres_server.create_database())
    yield d
    d.close()


@pytest.fixture
def two_servers(postgres_db) -> tuple[Database, LeaseStore]:
    """Servers a and b registered on a PostgreSQL database."""
    store = LeaseStore(postgres_db)
    store.register("a", "http://127.0.0.1:1", "h", 1)
    store.register("b", "http://127.0.0.1:2", "h", 2)
    return postgres_db, store


def _lapse(db) -> None:
    with db.write() as conn:
        conn.execute(leases.update().values(expires_at=0.0))


def test_on_sqlite_a_server_takes_a_dead_servers_lease_at_once(db):
    """SQLite serves one server (the workspace's lock): a lease held by another is a dead one's."""
    store = LeaseStore(db)
    assert store.claim("killed", 60.0).epoch == 1
    taken = store.claim("restarted", 60.0)
    assert taken.holder == "restarted" and taken.epoch == 2
    store.register("killed", "http://127.0.0.1:1", "h", 1)
    store.register("restarted", "http://127.0.0.1:1", "h", 2)
    assert [r["id"] for r in store.servers()[0]] == ["restarted"]   # the dead one's row goes


@pytest.mark.slow   # a PostgreSQL server
def test_one_server_leads_and_the_other_takes_over_only_once_the_lease_lapses(two_servers):
    db, store = two_servers
    first = store.claim("a", 60.0)
    assert first.holder == "a" and first.epoch == 1
    assert store.claim("b", 60.0) is None
    assert store.claim("a", 60.0).epoch == 1          # renewed: the same term
    _lapse(db)
    taken = store.claim("b", 60.0)
    assert taken.holder == "b" and taken.epoch == 2
    assert store.claim("a", 60.0) is None
    rows, lease, _ = store.servers()
    assert [r["id"] for r in rows] == ["a", "b"] and lease.holder == "b"


def _one_deployment(db) -> tuple[LeaseStore, ServingStore, str]:
    """The stores, and the spec hash of a deployment just created (its rollout not recorded)."""
    serving = ServingStore(db)
    serving.create_endpoint("ep", {"auth_mode": "key"})
    row, _ = serving.put_deployment("ep", "blue", {"model": "m:1"}, create=True)
    return LeaseStore(db), serving, row["spec_hash"]


@pytest.mark.slow   # a PostgreSQL server
def test_a_write_under_an_ended_lease_is_refused_and_changes_nothing(postgres_db):
    db = postgres_db
    store, serving, spec_hash = _one_deployment(db)
    old = store.claim("a", 60.0)
    _lapse(db)
    store.claim("b", 60.0)
    with pytest.raises(LeaseLost, match="epoch 1 has ended .*epoch 2"):
        serving.record_rollout("ep", "blue", spec_hash, ok=True, fence=Fence(old.epoch))
    assert serving.deployment("ep", "blue")["state"] == "Creating"
    serving.record_rollout("ep", "blue", spec_hash, ok=True, fence=Fence(2))
    assert serving.deployment("ep", "blue")["state"] == "Succeeded"


@pytest.mark.slow   # a PostgreSQL server
def test_a_lapsed_lease_nobody_took_fences_its_holder_too(postgres_db):
    db = postgres_db
    store, serving, spec_hash = _one_deployment(db)
    store.claim("a", 60.0)
    _lapse(db)
    with pytest.raises(LeaseLost):
        serving.record_rollout("ep", "blue", spec_hash, ok=True, fence=Fence(1))


@pytest.mark.slow   # a PostgreSQL server
def test_release_lets_another_server_lead_at_once_and_forget_drops_silent_rows(two_servers):
    db, store = two_servers
    store.claim("a", 60.0)
    store.release("a")
    assert store.claim("b", 60.0).epoch == 2
    with db.write() as conn:
        conn.execute(sa.text("UPDATE servers SET heartbeat_at = 0 WHERE id = 'b'"))
    assert store.forget(3600.0) == 1
    assert store.servers()[0] == []
