"""Content hashes: the sha256 that names every model and code snapshot, computed one way."""

from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK = 1 << 20


def tree_digest(files: list[dict]) -> str:
    """One sha256 for a tree, from its files' relative paths and sha256s (sorted by path)."""
    h = hashlib.sha256()
    for f in files:
        h.update(f["path"].encode() + b"\0" + f["sha256"].encode() + b"\n")
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def files_digest(files: dict[str, bytes]) -> str:
    """The sha256 `content_digest` gives a tree, from its files in memory ({path: bytes}, with
    the paths as content_digest names them): how a snapshot shipped elsewhere is checked."""
    return tree_digest(sorted(({"path": rel, "sha256": hashlib.sha256(data).hexdigest()}
                               for rel, data in files.items()), key=lambda f: f["path"]))
