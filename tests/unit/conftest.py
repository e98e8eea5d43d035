"""Fixtures of the unit layer (no process started)."""

from __future__ import annotations

import pytest

from modelfleet.store import Database


@pytest.fixture
def db(tmp_path):
    """A workspace database on a real SQLite file of the test's own."""
    d = Database(f"sqlite:///{tmp_path / 'workspace.db'}")
    yield d
    d.close()
