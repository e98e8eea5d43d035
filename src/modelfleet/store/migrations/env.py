"""Alembic's entry point. modelfleet runs migrations itself (store/db.py) inside its own write
transaction and hands the connection over in `config.attributes`; there is no alembic.ini."""

from alembic import context

from modelfleet.store.schema import metadata

connection = context.config.attributes["connection"]
# render_as_batch: SQLite alters a table by copying it, which batch operations do for us.
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
