"""Copy a workspace's metadata from one database into another (SQLite into PostgreSQL)."""

from __future__ import annotations

import sqlalchemy as sa

from ..domain.errors import Conflict
from ..schema.database_url import redact
from .db import Database
from .schema import SERVER_STATE, metadata

CHUNK_ROWS = 1000   # rows per INSERT: a workspace with many versions never sits whole in memory


def copy_rows(source: Database, target: Database, also: tuple[sa.Table, ...] = ()) -> dict[str, int]:
    """Every row of every table, parents before children, in one transaction on the target,
    which must hold no row yet (a half-copied workspace is never left behind). Rows per table.
    The servers' own tables stay, but for those named in `also`."""
    counts: dict[str, int] = {}
    tables = [t for t in metadata.sorted_tables if t not in SERVER_STATE or t in also]
    with source.read() as src, target.write() as dst:
        held = {t.name: n for t in tables
                if (n := dst.execute(sa.select(sa.func.count()).select_from(t)).scalar())}
        if held:
            rows = ", ".join(f"{n} {name}" for name, n in held.items())
            raise Conflict(f"database {redact(target.url)} already holds a workspace ({rows}): "
                           "migrate into an empty database")
        for table in tables:
            counts[table.name] = 0
            result = src.execution_options(yield_per=CHUNK_ROWS).execute(sa.select(table))
            for chunk in result.partitions():
                dst.execute(table.insert(), [row._asdict() for row in chunk])
                counts[table.name] += len(chunk)
    return counts
