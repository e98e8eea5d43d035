"""Content-addressed snapshots of model and code files.

A snapshot is a directory ``artifacts/<kind>/<sha256>/`` written under ``artifacts/tmp/`` and
renamed into place only once every byte is copied and hashed, so a crash or Ctrl-C at any point
leaves either nothing or a complete snapshot. The snapshot's hash covers each file's relative
path and content, so equal content always lands in the same place (and is stored once).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from ..digests import CHUNK, file_sha256, tree_digest
from ..errors import IntegrityError, InvalidInput, NotFound, StorageError



@dataclass(frozen=True)
class Snapshot:
    sha256: str
    size: int
    files: list[dict]  # [{"path", "size", "sha256"}], sorted by path
    path: Path


def _walk(src: Path) -> list[tuple[Path, str]]:
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
    files = sorted(({"path": rel, "size": p.stat().st_size, "sha256": file_sha256(p)} for p, rel in _walk(src)),
                   key=lambda f: f["path"])
    if not files:
        raise InvalidInput(f"path {str(src)!r} contains no files")
    return tree_digest(files), files


class ArtifactStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.tmp = self.root / "tmp"

    def snapshot_dir(self, kind: str, sha256: str) -> Path:
        return self.root / kind / sha256

    def add(self, kind: str, src: str | Path) -> Snapshot:
        """Copy `src` (file or directory) into the store; returns its content-addressed snapshot."""
        src = Path(src).expanduser()
        if not src.exists():
            raise InvalidInput(f"path {str(src)!r} does not exist")
        staging = self.tmp / uuid.uuid4().hex
        try:
            staging.mkdir(parents=True)
            files = []
            for abs_path, rel in _walk(src):
                dest = staging / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                h = hashlib.sha256()
                size = 0
                with open(abs_path, "rb") as fin, open(dest, "wb") as fout:
                    while chunk := fin.read(CHUNK):
                        h.update(chunk)
                        fout.write(chunk)
                        size += len(chunk)
                    fout.flush()
                    os.fsync(fout.fileno())
                os.chmod(dest, 0o444)
                files.append({"path": rel, "size": size, "sha256": h.hexdigest()})
            if not files:
                raise InvalidInput(f"path {str(src)!r} contains no files")
            files.sort(key=lambda f: f["path"])
            sha = tree_digest(files)
            final = self.snapshot_dir(kind, sha)
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():
                shutil.rmtree(staging, ignore_errors=True)
            else:
                try:
                    os.rename(staging, final)
                except OSError:
                    if not final.exists():  # lost a race to an identical snapshot: fine
                        raise
                    shutil.rmtree(staging, ignore_errors=True)
            return Snapshot(sha, sum(f["size"] for f in files), files, final)
        except OSError as e:
            shutil.rmtree(staging, ignore_errors=True)
            raise StorageError(f"cannot store {src} in {self.root}: {e.strerror or e}") from e
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def remove(self, kind: str, sha256: str) -> None:
        """Delete a snapshot no version or deployment uses any more (best effort)."""
        shutil.rmtree(self.snapshot_dir(kind, sha256), ignore_errors=True)

    def verify(self, kind: str, sha256: str, files: list[dict]) -> Path:
        """The snapshot's path, after checking every file against its recorded sha256."""
        base = self.snapshot_dir(kind, sha256)
        if not base.is_dir():
            raise NotFound(f"artifact {kind}/{sha256} is missing from the workspace store")
        for f in files:
            p = base / f["path"]
            if not p.is_file():
                raise IntegrityError(f"artifact file {f['path']} is missing from {kind}/{sha256[:12]}")
            actual = file_sha256(p)
            if actual != f["sha256"]:
                raise IntegrityError(
                    f"sha256 mismatch for {f['path']}: expected {f['sha256'][:12]}, found {actual[:12]} "
                    f"(the stored file was changed after registration)")
        return base

    def sweep_tmp(self, older_than_s: float = 3600) -> None:
        """Remove staging left behind by an interrupted copy (old enough not to be in progress)."""
        if self.tmp.is_dir():
            cutoff = time.time() - older_than_s
            for d in self.tmp.iterdir():
                with contextlib.suppress(OSError):
                    if d.stat().st_mtime < cutoff:
                        shutil.rmtree(d)
