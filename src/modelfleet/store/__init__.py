"""The only SQL and the only artifact file I/O in modelfleet."""

from .artifacts import ArtifactStore, Snapshot
from .db import Database, utcnow

__all__ = ["ArtifactStore", "Database", "Snapshot", "utcnow"]
