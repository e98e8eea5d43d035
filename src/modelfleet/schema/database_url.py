"""Where a workspace's metadata lives, as a URL: SQLite's file or a PostgreSQL database. The rules
that a saved setting and the store both apply, and the one way a URL is shown (password hidden)."""

from __future__ import annotations

import contextlib

import sqlalchemy as sa

from ..domain.errors import InvalidInput


def engine_url(url: str) -> sa.URL:
    """A database URL as SQLAlchemy takes it: `postgresql://` means psycopg 3 (not psycopg2)."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        raise InvalidInput(f"database URL {redact(url)!r}: not a URL (sqlite:///PATH or postgresql://HOST/DB)") from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise InvalidInput(f"database URL {redact(url)!r}: modelfleet stores metadata in SQLite or PostgreSQL")
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def redact(url: str) -> str:
    """The URL with its password hidden, for messages and `show`."""
    with contextlib.suppress(Exception):
        return sa.make_url(url).render_as_string(hide_password=True)
    return "<unparsable URL>"
