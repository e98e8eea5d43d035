"""The node-local cache: blobs read from a datastore, kept in one folder that every replica and
worker on the node shares, named by sha256, bounded in size, least recently used evicted.

    <root>/blobs/<sha256>   complete, checked blobs (read-only); mtime = last use
    <root>/locks/<sha256>   one lock file per blob (flock)
    <root>/tmp/             downloads under way (a crash leaves a file here, never in blobs/)

Each blob's lock file says who may do what with it: a process using the blob (a replica that
loaded it) holds it shared for as long as it does: a `Lease`, a pin; a process fetching it holds
it exclusive, so concurrent fetches of one blob by many processes download it once (the others
wait, then find it cached); the evictor takes it exclusive without waiting, so it skips every
blob that is pinned or being fetched. Locks die with their process: a crashed replica pins nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from ..domain.errors import StorageError
from .base import Datastore, check_sha256


@dataclass
class Lease:
    """A cached blob pinned until `release()` (or the holder's exit). `fetched`: this lease
    downloaded it (False when the node already had it: nothing was read remotely)."""
    sha256: str
    path: Path
    fetched: bool
    _fd: int | None = field(default=None, repr=False)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the file releases its flock
            self._fd = None

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class NodeCache:
    def __init__(self, root: Path, max_bytes: int):
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.blobs, self.locks, self.tmp = self.root / "blobs", self.root / "locks", self.root / "tmp"
        for d in (self.blobs, self.locks, self.tmp):
            d.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        return self.blobs / check_sha256(sha256)

    def has(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def size(self) -> int:
        return sum(size for _, size, _ in self._entries())

    def lease(self, sha256: str, datastore: Datastore) -> Lease:
        """Blob `sha256`, from the cache or else fetched from `datastore` (checked by its sha256,
        nothing cached when it does not match), pinned until the lease is released."""
        blob = self.path(sha256)
        fd = os.open(self.locks / sha256, os.O_RDWR | os.O_CREAT, 0o644)
        fetched = False
        try:
            while True:
                fcntl.flock(fd, fcntl.LOCK_SH)
                if blob.is_file():
                    with contextlib.suppress(OSError):
                        os.utime(blob)  # least recently used goes first: a use is a touch
                    return Lease(sha256, blob, fetched, fd)
                # not cached: fetch it holding the lock alone (flock drops the shared lock first,
                # so two fetchers never wait on each other); whoever comes second finds it cached
                fcntl.flock(fd, fcntl.LOCK_EX)
                if not blob.is_file():
                    self._fetch(sha256, datastore)
                    fetched = True
                # back to shared, then check again: an evictor may slip in between the two locks
        except BaseException:
            os.close(fd)
            raise

    def _fetch(self, sha256: str, datastore: Datastore) -> None:
        part = self.tmp / f"{sha256}.{uuid.uuid4().hex[:8]}"
        try:
            datastore.get(sha256, part)
            size = part.stat().st_size
            self._make_room(size, keep=sha256)
            os.chmod(part, 0o444)
            os.replace(part, self.blobs / sha256)
        except OSError as e:
            raise StorageError(f"node cache {self.root}: cannot store blob {sha256[:12]}: {e.strerror or e}") from e
        finally:
            with contextlib.suppress(FileNotFoundError):
                part.unlink()

    def _entries(self) -> list[tuple[str, int, float]]:
        out = []
        with os.scandir(self.blobs) as it:
            for e in it:
                with contextlib.suppress(FileNotFoundError):
                    st = e.stat()
                    out.append((e.name, st.st_size, st.st_mtime))
        return out

    def _make_room(self, size: int, keep: str) -> None:
        """Evict the least recently used blobs nobody holds until `size` more bytes fit the bound;
        StorageError when the blobs in use leave no room (the bound is the user's promise)."""
        with open(self.root / "evict.lock", "a") as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)  # one evictor at a time: two would count each other's frees
            entries = sorted(self._entries(), key=lambda e: e[2])
            total = sum(s for _, s, _ in entries)
            for name, blob_size, _ in entries:
                if total + size <= self.max_bytes:
                    break
                if name != keep and self._evict(name):
                    total -= blob_size
            if total + size > self.max_bytes:
                raise StorageError(f"node cache {self.root} is full: {total} bytes pinned by replicas in use, "
                                   f"{size} more needed, bound {self.max_bytes} bytes")

    def _evict(self, name: str) -> bool:
        """Remove one blob unless someone holds its lock (in use or being fetched)."""
        fd = os.open(self.locks / name, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        try:
            (self.blobs / name).unlink()
            return True
        except FileNotFoundError:
            return False
        finally:
            os.close(fd)

    def sweep_tmp(self) -> None:
        """Remove downloads left by a crashed process (none holds a lock on its blob now)."""
        for part in self.tmp.iterdir():
            sha = part.name.split(".", 1)[0]
            fd = os.open(self.locks / sha, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                part.unlink(missing_ok=True)
            except BlockingIOError:
                pass
            finally:
                os.close(fd)
