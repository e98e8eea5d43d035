"""The database's change watch: a poller reads its rows again only after a commit."""

from __future__ import annotations

from modelfleet.store import Database
from modelfleet.store.serving import ServingStore


def test_a_commit_from_any_connection_is_seen_once_and_reads_are_not(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'fleet.db'}")
    watch = db.watch()
    try:
        assert watch.changed()                       # the first look always reads
        assert not watch.changed()
        ServingStore(db).create_endpoint("ep", {"auth_mode": "key"})
        assert watch.changed() and not watch.changed()
        ServingStore(db).endpoints()                 # a read commits nothing
        assert not watch.changed()
        other = Database(db.url)                     # another process's engine, as the CLI's
        ServingStore(other).create_endpoint("ep2", {"auth_mode": "key"})
        other.close()
        assert watch.changed()
        watch.forget()                               # a failed read: look again next time
        assert watch.changed()
    finally:
        watch.close()
        db.close()
