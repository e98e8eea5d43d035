"""Where a replica on another node reads its model and code: the workspace's default datastore,
into the node's own cache, so that the server is not on the path (docs/datastores.md).

While the workspace's own folder is the default, or when the store cannot be reached to check
that it holds a snapshot registered before it became the default, there is no source: the
backend ships the server's copy instead (Ray's object store).
"""

from __future__ import annotations

import logging

from ...backends.base import DatastoreSource
from ...datastores.documents import resolved
from ...domain.errors import DatastoreError
from ...schema import server_settings
from ...schema.workspace import Workspace
from .stores import Stores

log = logging.getLogger("modelfleet.controller")


class NodeSources:
    def __init__(self, ws: Workspace, stores: Stores):
        self._ws, self._stores = ws, stores
        self._committed: set[tuple] = set()   # (datastore and where it is, snapshot sha256): holds every blob

    def model(self, model) -> DatastoreSource | None:
        """The source of `model` (a version) for a node that is not the server's; blocking."""
        return self._source("models", model.sha256, model.files, model.ref)

    def code(self, sha256: str, files: list[dict], root: str) -> DatastoreSource | None:
        """The source of a code snapshot (`files` relative to it, the scoring script under `root`)."""
        return self._source("code", sha256, files, f"code {sha256[:12]}", root)

    def _source(self, kind: str, sha256: str, files: list[dict], what: str, root: str = "") -> DatastoreSource | None:
        doc = self._stores.datastores.default_document()
        if doc is None:
            return None
        key = (doc.name, doc.url, doc.container_name, sha256)   # an update may move the datastore
        if key not in self._committed:
            try:   # a snapshot stored before this default: its blobs are put there now, once
                self._stores.datastores.commit(kind, sha256, files)
            except DatastoreError as e:
                if not self._stores.artifacts.snapshot_dir(kind, sha256).is_dir():
                    raise
                log.warning("%s; replicas of %s get the server's copy", e.message, what)
                return None
            self._committed.add(key)
        cache_bytes = server_settings.load(self._ws).node_cache_bytes
        return DatastoreSource(resolved(doc), tuple(files), cache_bytes, root)
