"""A file written under a temporary name, hashed as it is written, and renamed into place only
when its sha256 is the one expected: a reader never sees a partial or wrong file."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

from .base import mismatch


class StagedFile:
    def __init__(self, f):
        self.f = f
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        return self.f.write(data)


@contextlib.contextmanager
def staged(dest: Path, sha256: str, where: str, tmp_dir: Path | None = None, mode: int = 0o644):
    """Yields a StagedFile; on a clean exit checks the sha256 (IntegrityError naming `where` on a
    mismatch), fsyncs and renames over `dest`. Any failure removes the temporary file."""
    dest = Path(dest)
    parent = Path(tmp_dir) if tmp_dir is not None else dest.parent
    parent.mkdir(parents=True, exist_ok=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name[:16]}.", suffix=".part", dir=parent)
    try:
        with os.fdopen(fd, "wb") as f:
            out = StagedFile(f)
            yield out
            f.flush()
            os.fsync(f.fileno())
        actual = out.hash.hexdigest()
        if actual != sha256:
            raise mismatch(where, sha256, actual)
        os.chmod(tmp, mode)
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
