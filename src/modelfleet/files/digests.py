"""Content hashes: the sha256 that names every model and code snapshot, computed one way."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ..domain.errors import InvalidInput

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


def walk(src: Path) -> list[tuple[Path, str]]:
    """(absolute file, relative path) pairs; the top-level name is kept, as Azure ML does."""
    if src.is_file():
        return [(src, src.name)]
    out = []
    inside = src.resolve()
    for root, dirs, names in os.walk(src):
        dirs[:] = sorted(d for d in dirs if d not in ("__pycache__", ".git"))
        for d in dirs:  # os.walk does not descend into linked directories; say so for outside ones
            p = Path(root) / d
            if p.is_symlink() and not p.resolve().is_relative_to(inside):
                raise InvalidInput(f"{p}: symbolic link points outside {src}")
        for n in sorted(names):
            p = Path(root) / n
            if p.is_symlink() and not p.resolve().is_relative_to(inside):
                raise InvalidInput(f"{p}: symbolic link points outside {src}")
            out.append((p, f"{src.name}/{p.relative_to(src).as_posix()}"))
    return out


def content_digest(src: str | Path) -> tuple[str, list[dict]]:
    """The sha256 and file list that `ArtifactStore.add` would give `src`, without copying it
    (lets a plan tell whether local files differ from a stored snapshot)."""
    src = Path(src).expanduser()
    if not src.exists():
        raise InvalidInput(f"path {str(src)!r} does not exist")
    files = sorted(({"path": rel, "size": p.stat().st_size, "sha256": file_sha256(p)} for p, rel in walk(src)),
                   key=lambda f: f["path"])
    if not files:
        raise InvalidInput(f"path {str(src)!r} contains no files")
    return tree_digest(files), files
