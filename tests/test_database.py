"""The metadata database on SQLite and on a real PostgreSQL server: migrations (new databases,
and workspaces made before Alembic upgraded in place), writers serialized across connections,
etags under concurrent writers, the change watch, and one-line errors."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from modelfleet.domain.errors import InvalidInput, PreconditionFailed, StorageError
from modelfleet.schema.database_url import redact
from modelfleet.store.db import Database
from modelfleet.store.models import ModelStore
from modelfleet.store.schema import metadata
from modelfleet.store.serving import ServingStore, spec_etag

from .helpers import wait_until

pytestmark = pytest.mark.databases


@pytest.fixture
def database_url(database, request, tmp_path) -> str:
    if database == "postgresql":
        return request.getfixturevalue("postgres_server").create_database()
    return f"sqlite:///{tmp_path / 'workspace.db'}"


@pytest.fixture
def db(database_url):
    d = Database(database_url)
    yield d
    d.close()


def _newest_revision() -> str:
    from alembic.script import ScriptDirectory
    from modelfleet.store.db import MIGRATIONS_DIR
    return ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


def _at_once(work, n: int) -> None:
    """work(0) .. work(n-1), each on a thread of its own, all started before any is joined."""
    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _schema_differences(db: Database) -> list:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    with db.read() as conn:
        return compare_metadata(MigrationContext.configure(conn), metadata)


@pytest.mark.slow
def test_a_new_database_is_at_the_newest_revision_and_its_tables_are_what_queries_expect(db):
    with db.read() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == _newest_revision()
    assert _schema_differences(db) == []
    Database(db.url).close()   # a second open finds it current and changes nothing
    assert _schema_differences(db) == []


@pytest.mark.slow
def test_writers_on_many_connections_number_versions_without_a_gap_or_a_twin(db, database_url):
    """Read-then-write (the next version number) from 8 threads, each with a Database of its own
    as separate servers would have: every version 1..N exactly once."""
    errors = []

    def register(i: int) -> None:
        own = Database(database_url)
        try:
            for j in range(5):
                ModelStore(own).add("m", None, type="sklearn", sha256=f"{i:02d}{j:02d}".ljust(64, "0"), size=1,
                                    files=[], description="", tags={})
        except Exception as e:  # noqa: BLE001  (reported below)
            errors.append(e)
        finally:
            own.close()

    _at_once(register, 8)
    assert errors == []
    versions = sorted(int(m.version) for m in ModelStore(db).list("m"))
    assert versions == list(range(1, 41))


@pytest.mark.slow
def test_concurrent_updates_from_one_etag_commit_once_and_refuse_the_rest(db, database_url):
    serving = ServingStore(db)
    serving.create_endpoint("e", {})
    row, _ = serving.put_deployment("e", "blue", {"model": "m:1", "instance_count": 1}, create=True)
    etag = spec_etag(row["spec"])
    outcomes = []

    def update(i: int) -> None:
        own = Database(database_url)
        try:
            ServingStore(own).put_deployment("e", "blue", {"model": "m:1", "instance_count": 2 + i},
                                             create=False, if_match=etag)
            outcomes.append(("ok", i))
        except PreconditionFailed as e:
            outcomes.append(("412", str(e)))
        finally:
            own.close()

    _at_once(update, 6)
    wins = [i for kind, i in outcomes if kind == "ok"]
    assert len(wins) == 1 and len(outcomes) == 6
    assert serving.deployment("e", "blue")["spec"]["instance_count"] == 2 + wins[0]
    assert all("changed since it was read" in why for kind, why in outcomes if kind == "412")


@pytest.mark.slow
def test_the_change_watch_sees_every_other_connections_commit_once_and_reads_never(db, database_url):
    watch = db.watch()
    try:
        assert watch.changed()                 # the first look reads everything
        assert not watch.changed()
        with db.read() as conn:
            conn.execute(sa.select(sa.func.count()).select_from(sa.table("models"))).scalar()
        assert not watch.changed()
        other = Database(database_url)         # another server's commit
        try:
            ServingStore(other).create_endpoint("e", {})
        finally:
            other.close()
        wait_until(watch.changed, timeout=10)  # a notification travels; SQLite's answer is at once
        assert not watch.changed()
        watch.forget()                         # a look that was not acted on
        assert watch.changed()
    finally:
        watch.close()


def test_a_database_made_before_alembic_is_upgraded_in_place(tmp_path):
    """What the previous release left: its named migrations in schema_migrations (here the first
    two), their tables and a model. Opening it adds what is missing and keeps every row."""
    path = tmp_path / "workspace.db"
    legacy = sa.create_engine(f"sqlite:///{path}")
    with legacy.begin() as conn:
        tables = [metadata.tables[n] for n in ("models", "model_labels", "endpoints", "deployments", "computes")]
        metadata.create_all(conn, tables=tables)
        conn.execute(sa.text("CREATE TABLE schema_migrations (name VARCHAR(128) PRIMARY KEY, applied_at VARCHAR(32))"))
        conn.execute(sa.text("INSERT INTO schema_migrations VALUES ('0001_initial', 'x'), ('0002_computes', 'x')"))
        conn.execute(sa.text("INSERT INTO models VALUES ('m', '1', 1, '', 'sklearn', :h, 3, '[]', '{}', 0, 'now')"),
                     {"h": "a" * 64})
    legacy.dispose()
    db = Database(f"sqlite:///{path}")
    try:
        assert [m.ref for m in ModelStore(db).list()] == ["m:1"]
        with db.read() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == _newest_revision()
            assert not sa.inspect(conn).has_table("schema_migrations")
            assert conn.execute(sa.text("pragma journal_mode")).scalar() == "wal"
        assert _schema_differences(db) == []
    finally:
        db.close()


def test_bad_database_urls_are_one_line_naming_the_url_without_its_password(tmp_path):
    with pytest.raises(InvalidInput, match=r"^database URL 'mysql://u:\*\*\*@h/d': modelfleet stores"):
        Database("mysql://u:secret@h/d")
    with pytest.raises(InvalidInput, match="not a URL"):
        Database("not a url")
    assert redact("postgresql://alice:s3cret@db:5432/fleet") == "postgresql://alice:***@db:5432/fleet"


@pytest.mark.slow
def test_an_unreachable_postgresql_is_one_line_without_the_password(postgres_server):
    url = postgres_server.url("fleet").replace(f":{postgres_server.port}", ":1").replace("postgres@", "postgres:s3cret@")
    with pytest.raises(StorageError) as caught:
        Database(url)
    message = str(caught.value)
    assert message.startswith("cannot open database postgresql://postgres:***@127.0.0.1:1/fleet: ")
    assert "s3cret" not in message and "\n" not in message
