"""Datastores: where a workspace's bytes live, and the node-local cache replicas read them from.

Callers see only the `Datastore` protocol (base.py), `open_datastore` and `NodeCache`; which
store is behind one (the local folder, an Azure Blob container) is the document's business.
collected.py is the collection writer that also puts collected files in the default datastore.
See docs/datastores.md.
"""

from __future__ import annotations

from pathlib import Path

from .base import Datastore
from .cache import Lease, NodeCache
from .documents import LOCAL_NAME, DatastoreDocument, parse_document, redacted
from .local import LocalDatastore
from .uris import DatastorePath, is_datastore_uri, parse

__all__ = ["LOCAL_NAME", "Datastore", "DatastoreDocument", "DatastorePath", "Lease", "LocalDatastore", "NodeCache",
           "is_datastore_uri", "open_datastore", "parse", "parse_document", "redacted"]


def open_datastore(doc: DatastoreDocument | Path, name: str = LOCAL_NAME) -> Datastore:
    """The datastore a document describes, or the local folder at a path (the embedded default)."""
    if isinstance(doc, Path):
        return LocalDatastore(name, doc)
    from .azure_blob import AzureBlobDatastore  # azure-storage-blob is an extra: imported when used
    secret = doc.credentials.secret()
    return AzureBlobDatastore(
        doc.name, doc.url, doc.container_name, account_name=doc.account_name,
        account_key=secret if doc.credentials.kind == "account_key" else None,
        sas_token=secret if doc.credentials.kind == "sas_token" else None)
