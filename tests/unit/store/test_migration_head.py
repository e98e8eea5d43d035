"""The server's quick look at the schema (no Alembic import) agrees with Alembic."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from modelfleet.store.db import MIGRATIONS_DIR, _current_revision, _migration_head


def test_the_newest_migration_file_is_alembics_head_and_the_chain_is_linear():
    scripts = ScriptDirectory(str(MIGRATIONS_DIR))
    assert scripts.get_heads() == [_migration_head()]
    assert [s.revision for s in scripts.walk_revisions()] == sorted(
        (p.stem for p in (MIGRATIONS_DIR / "versions").glob("[0-9]*.py")), reverse=True)


def test_the_current_revision_is_what_alembic_reads(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'w.db'}")
    with engine.begin() as conn:
        assert _current_revision(conn) is None
        conn.execute(sa.text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
        conn.execute(sa.text("INSERT INTO alembic_version VALUES ('0007_servers')"))
        assert _current_revision(conn) == MigrationContext.configure(conn).get_current_revision() == "0007_servers"
    engine.dispose()
