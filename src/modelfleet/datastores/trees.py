"""A snapshot's folder on a node, made from the node cache's blobs: what a replica loads.

    <cache>/trees/<kind>/<sha256>/<path>  ->  <cache>/blobs/<file sha256>   (symbolic links)

Each file of the snapshot is leased from the cache (fetched from the datastore when the node
lacks it, checked against its sha256) and stays pinned while the replica holds the `Tree`, so
the evictor never takes a blob in use. The folder holds links, not copies: the cache's bound
counts every byte once, and a blob evicted later only leaves a link that the next tree made
over it replaces. The folder is built under a temporary name and renamed into place.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..domain.errors import IntegrityError, StorageError
from .base import Datastore
from .cache import Lease, NodeCache


@dataclass
class Tree:
    """A snapshot's folder with its blobs pinned; `fetched_bytes` were read from the datastore
    (0 when the node's cache held every file)."""
    path: Path
    leases: list[Lease] = field(default_factory=list, repr=False)
    fetched_bytes: int = 0

    def release(self) -> None:
        for lease in self.leases:
            lease.release()


def _check(path: str) -> PurePosixPath:
    rel = PurePosixPath(path)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise IntegrityError(f"snapshot file path {path!r} leaves its folder")
    return rel


def build(cache: NodeCache, datastore: Datastore, kind: str, sha256: str, files: list[dict]) -> Tree:
    """The folder of snapshot `kind/sha256` (its `files` as the version row lists them), every
    blob leased from `cache`."""
    tree = Tree(cache.root / "trees" / kind / sha256)
    try:
        for f in files:
            _check(f["path"])
            lease = cache.lease(f["sha256"], datastore)
            tree.leases.append(lease)
            if lease.fetched:
                tree.fetched_bytes += lease.path.stat().st_size
        _link(cache, tree.path, files)
        return tree
    except BaseException:
        tree.release()
        raise


def _link(cache: NodeCache, final: Path, files: list[dict]) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(final.parent / f".{final.name}.lock", "a") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)   # one builder per tree on the node
        if final.is_dir() and all(os.path.exists(final / f["path"]) for f in files):
            return
        staging = final.parent / f".{final.name}.{uuid.uuid4().hex[:8]}"
        try:
            for f in files:
                link = staging / f["path"]
                link.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(cache.path(f["sha256"]), link)
            old = final.parent / f".{final.name}.old.{uuid.uuid4().hex[:8]}"
            with contextlib.suppress(FileNotFoundError):
                os.rename(final, old)   # a tree with a link to an evicted blob: replaced whole
            os.rename(staging, final)
            shutil.rmtree(old, ignore_errors=True)
        except OSError as e:
            raise StorageError(f"node cache {cache.root}: cannot make the folder of {final.name[:12]}: "
                               f"{e.strerror or e}") from e
        finally:
            shutil.rmtree(staging, ignore_errors=True)
