"""Where a replica on another node reads its model: the workspace's default datastore, into the
node's own cache, so that the server is not on the path (docs/datastores.md).

While the workspace's own folder is the default, or when the store cannot be reached to check
that it holds a version registered before it became the default, there is no source: the
backend ships the server's snapshot instead (Ray's object store).
"""

from __future__ import annotations

import logging

from ...backends.base import ModelSource
from ...datastores.documents import resolved
from ...domain.errors import DatastoreError
from ...schema import server_settings
from ...schema.workspace import Workspace
from .stores import Stores

log = logging.getLogger("modelfleet.controller")


class ModelSources:
    def __init__(self, ws: Workspace, stores: Stores):
        self._ws, self._stores = ws, stores
        self._committed: set[tuple[str, str]] = set()   # (datastore, model sha256) known to hold every blob

    def for_node(self, model) -> ModelSource | None:
        """The source of `model` (a version) for a node that is not the server's; blocking."""
        doc = self._stores.datastores.default_document()
        if doc is None:
            return None
        key = (doc.name, model.sha256)
        if key not in self._committed:
            try:   # a version registered before this default: its blobs are put there now, once
                self._stores.datastores.commit("models", model.sha256, model.files)
            except DatastoreError as e:
                if not self._stores.artifacts.snapshot_dir("models", model.sha256).is_dir():
                    raise
                log.warning("%s; replicas of %s get the server's copy", e.message, model.ref)
                return None
            self._committed.add(key)
        cache_bytes = server_settings.load(self._ws).node_cache_bytes
        return ModelSource(resolved(doc), tuple(model.files), cache_bytes)
