"""The workspace's datastores at work: snapshots committed to the default datastore before their
version row is written, and models or code read from a datastore path into a snapshot.

    commit("models", sha256, files)   every file put as a blob named by its sha256 (streamed,
                                      block list committed only when complete and checked);
                                      a no-op while the default is the workspace's own folder
    read(uri, "models")               azureml://datastores/<ds>/paths/<p>, the long azureml://
                                      subscriptions/... form or an account URL, copied into a
                                      content-addressed snapshot

Every failure of a store is a DatastoreError naming it, raised before any row is written: the
callers write rows only after these return.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from pathlib import Path

from ..datastores import LOCAL_NAME, Datastore, DatastoreDocument, open_datastore, parse
from ..domain.errors import InvalidInput, NotFound
from ..files.digests import file_sha256
from ..store.artifacts import ArtifactStore, Snapshot
from ..store.datastores import DatastoreStore

log = logging.getLogger("modelfleet.datastores")


class Datastores:
    def __init__(self, store: DatastoreStore, artifacts: ArtifactStore):
        self.store = store
        self.artifacts = artifacts

    def default_document(self) -> DatastoreDocument | None:
        """The default datastore's document (its secret included: for replicas' nodes), or None
        while the workspace's own folder is the default."""
        return self.store.default()

    def default(self) -> Datastore | None:
        doc = self.store.default()
        return None if doc is None else open_datastore(doc)

    def prepare(self, doc: DatastoreDocument) -> None:
        """Reach a datastore about to be the default, making its container if it lacks one."""
        open_datastore(doc).ensure_container()

    def open(self, name: str) -> Datastore:
        if name == LOCAL_NAME:
            return open_datastore(self.artifacts.root)
        return open_datastore(self.store.get(name))

    def commit(self, kind: str, sha256: str, files: list[dict] | None = None) -> int:
        """Put each file of snapshot `kind/sha256` into the default datastore (those it lacks);
        the bytes sent. `files` as the version row keeps them (None: read from the snapshot)."""
        store = self.default()
        if store is None:
            return 0
        base = self.artifacts.snapshot_dir(kind, sha256)
        if files is None:
            files = snapshot_files(base)
        sent = 0
        for f in {f["sha256"]: f for f in files}.values():   # equal files are one blob
            if not store.exists(f["sha256"]):
                with open(base / f["path"], "rb") as source:
                    n = store.put(f["sha256"], source)
                if n < f["size"]:
                    log.info("datastore %r: blob %s resumed: %d of its %d bytes sent, the rest staged before",
                             store.name, f["sha256"][:12], n, f["size"])
                sent += n
        return sent

    def restore(self, kind: str, sha256: str, files: list[dict]) -> bool:
        """Bring back a snapshot the workspace's folder lost from the default datastore (each
        blob checked against its sha256, the folder renamed into place whole); False when the
        workspace's own folder is the default."""
        store = self.default()
        if store is None:
            return False
        final = self.artifacts.snapshot_dir(kind, sha256)
        staging = self.artifacts.tmp / f"restore-{uuid.uuid4().hex}"
        try:
            for f in files:
                target = staging / f["path"]
                store.get(f["sha256"], target)
                target.chmod(0o444)
            final.parent.mkdir(parents=True, exist_ok=True)
            try:
                staging.rename(final)
            except OSError:
                if not final.is_dir():   # else an identical restore landed first
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return True

    def read(self, uri: str, kind: str) -> Snapshot:
        """The files a datastore URI names, stored as a snapshot of `kind` (their paths start
        with the path's last name, as a local folder's do)."""
        where = parse(uri)
        name = where.datastore
        if name is None:
            name = self.store.find(where.account, where.container)
            if name is None:
                raise InvalidInput(f"path {uri!r}: no datastore is registered for account {where.account!r} and "
                                   f"container {where.container!r}; add one with `fleet datastore create -f blob.yml`")
        store = self.open(name)
        staging = self.artifacts.tmp / f"read-{uuid.uuid4().hex}"
        try:
            written = store.read_path(where.path, staging)
            if not written:
                raise NotFound(f"datastore {name!r}: path {where.path!r} holds no files")
            return self.artifacts.add(kind, staging / where.path.rsplit("/", 1)[-1])
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def snapshot_files(base: Path) -> list[dict]:
    """A stored snapshot's files ({path, size, sha256}), read from its folder."""
    return sorted(({"path": p.relative_to(base).as_posix(), "size": p.stat().st_size, "sha256": file_sha256(p)}
                   for p in base.rglob("*") if p.is_file()), key=lambda f: f["path"])
