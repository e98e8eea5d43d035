"""The local folder as a datastore: the workspace's artifact store (store/artifacts.py) holding
blobs beside its snapshots, at ``<root>/blobs/<sha256>``, staged under its ``tmp/`` (which
`ArtifactStore.sweep_tmp` clears after a crash) and renamed into place once checked."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import BinaryIO

from ..files.digests import CHUNK
from ..domain.errors import InvalidInput, NotFound, StorageError
from ..files.digests import walk as _walk
from .base import check_sha256
from .staging import staged

KIND = "blobs"


class LocalDatastore:
    def __init__(self, name: str, root: Path):
        self.name = name
        self.root = Path(root)   # the workspace's artifact folder (store/artifacts.py's root)
        self.tmp = self.root / "tmp"

    def _blob(self, sha256: str) -> Path:
        return self.root / KIND / check_sha256(sha256)

    def _where(self, sha256: str) -> str:
        return f"datastore {self.name!r}: blob {sha256[:12]}"

    def put(self, sha256: str, source: BinaryIO) -> int:
        dest = self._blob(sha256)
        if dest.is_file():
            return 0
        try:
            with staged(dest, sha256, self._where(sha256), tmp_dir=self.tmp, mode=0o444) as out:
                while data := source.read(CHUNK):
                    out.write(data)
            return out.size
        except OSError as e:
            raise StorageError(f"datastore {self.name!r}: cannot store blob {sha256[:12]} in "
                               f"{self.root}: {e.strerror or e}") from e

    def get(self, sha256: str, dest: Path) -> None:
        blob = self._blob(sha256)
        try:
            with open(blob, "rb") as src, staged(dest, sha256, self._where(sha256)) as out:
                while data := src.read(CHUNK):
                    out.write(data)
        except FileNotFoundError:
            raise NotFound(f"{self._where(sha256)} not found in {self.root}") from None

    def exists(self, sha256: str) -> bool:
        return self._blob(sha256).is_file()

    def delete(self, sha256: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._blob(sha256).unlink()

    def read_path(self, path: str, dest: Path) -> list[Path]:
        root = self.root.resolve()
        src = (root / path).resolve()
        if not src.is_relative_to(root) or src == root:
            raise InvalidInput(f"datastore {self.name!r}: path {path!r} is outside the datastore")
        if not src.exists():
            raise NotFound(f"datastore {self.name!r}: path {path!r} not found")
        written = []
        for file, rel in _walk(src):
            target = Path(dest) / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, target)
            written.append(target)
        return written
