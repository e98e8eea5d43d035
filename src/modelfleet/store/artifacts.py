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
import tarfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..files.digests import CHUNK, content_digest, file_sha256, tree_digest, walk as _walk
from ..domain.errors import IntegrityError, InvalidInput, NotFound, StorageError

__all__ = ["ArtifactStore", "Snapshot", "content_digest"]

@dataclass(frozen=True)
class Snapshot:
    sha256: str
    size: int
    files: list[dict]  # [{"path", "size", "sha256"}], sorted by path
    path: Path


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

    def receive(self, kind: str, sha256: str, tar_path: Path) -> Snapshot:
        """Store the files of an uploaded tar (regular files only, paths inside the snapshot) as
        a snapshot, refused unless their content hashes to `sha256`: what a client sent is what
        it hashed, or nothing is stored."""
        final = self.snapshot_dir(kind, sha256)
        staging = self.tmp / uuid.uuid4().hex
        try:
            staging.mkdir(parents=True)
            files = []
            with tarfile.open(tar_path, "r|") as tar:
                for member in tar:
                    if member.isdir():
                        continue
                    rel = PurePosixPath(member.name)
                    if not member.isreg() or rel.is_absolute() or ".." in rel.parts or not rel.parts:
                        raise InvalidInput(f"upload of {kind}/{sha256[:12]}: {member.name!r} is not a file "
                                           "inside the snapshot")
                    dest = staging / rel
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    h = hashlib.sha256()
                    src = tar.extractfile(member)
                    with open(dest, "wb") as fout:
                        while chunk := src.read(CHUNK):
                            h.update(chunk)
                            fout.write(chunk)
                        fout.flush()
                        os.fsync(fout.fileno())
                    os.chmod(dest, 0o444)
                    files.append({"path": rel.as_posix(), "size": member.size, "sha256": h.hexdigest()})
            files.sort(key=lambda f: f["path"])
            if not files or tree_digest(files) != sha256:
                raise IntegrityError(f"upload of {kind}/{sha256[:12]}: the files received hash to "
                                     f"{tree_digest(files)[:12] if files else 'nothing'}, not to the sha256 given")
            final.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(staging, final)
            except OSError:
                if not final.exists():
                    raise
                shutil.rmtree(staging, ignore_errors=True)   # an identical upload landed first
            return Snapshot(sha256, sum(f["size"] for f in files), files, final)
        except (OSError, tarfile.TarError) as e:
            shutil.rmtree(staging, ignore_errors=True)
            if isinstance(e, tarfile.TarError):
                raise InvalidInput(f"upload of {kind}/{sha256[:12]}: not a tar stream ({e})") from None
            raise StorageError(f"cannot store an upload in {self.root}: {e.strerror or e}") from e
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def described(self, kind: str, sha256: str, files: list[dict]) -> list[dict]:
        """`files` (sorted, typed) once checked to name exactly the stored snapshot `kind/sha256`:
        what a client registers after an upload must be what the store holds."""
        base = self.snapshot_dir(kind, sha256)
        if not base.is_dir():
            raise NotFound(f"artifact {kind}/{sha256} is not in the workspace store: upload it first")
        files = sorted(({"path": str(f["path"]), "size": int(f["size"]), "sha256": str(f["sha256"])} for f in files),
                       key=lambda f: f["path"])
        on_disk = sorted(p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())
        if not files or tree_digest(files) != sha256 or on_disk != [f["path"] for f in files] or any(
                (base / f["path"]).stat().st_size != f["size"] for f in files):
            raise InvalidInput(f"files: the list given does not describe snapshot {kind}/{sha256[:12]}")
        return files

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
