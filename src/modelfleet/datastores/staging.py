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
    """A file written in order, or in ranges at any offset (a parallel download seeks before each
    write): the hash follows the bytes in order; a range written ahead of a gap is read back
    from the file (the page cache) once the gap is filled, so memory stays one range."""

    def __init__(self, f):
        self.f = f
        self.hash = hashlib.sha256()
        self.size = 0     # bytes hashed: [0, size) is contiguous and in the hash
        self.pos = 0
        self.ahead: dict[int, int] = {}  # offset -> length of ranges written past a gap

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence != 0:
            raise OSError("a staged file seeks only to absolute offsets")
        self.pos = offset
        return offset

    def write(self, data: bytes) -> int:
        n = os.pwrite(self.f.fileno(), data, self.pos)
        if n != len(data):
            raise OSError(f"short write ({n} of {len(data)} bytes)")
        if self.pos == self.size:
            self.hash.update(data)
            self.size += n
            self._catch_up()
        elif self.pos > self.size:
            self.ahead[self.pos] = n
        else:
            raise OSError("a staged file is written once: a range was written twice")
        self.pos += n
        return n

    def _catch_up(self) -> None:
        while (n := self.ahead.pop(self.size, None)) is not None:
            end = self.size + n
            while self.size < end:
                block = os.pread(self.f.fileno(), min(end - self.size, 8 << 20), self.size)
                self.hash.update(block)
                self.size += len(block)


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
            if out.ahead:
                raise OSError(f"a staged file has a gap at byte {out.size}")
            os.fsync(f.fileno())
        actual = out.hash.hexdigest()
        if actual != sha256:
            raise mismatch(where, sha256, actual)
        os.chmod(tmp, mode)
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
