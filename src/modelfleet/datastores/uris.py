"""Where a model's or code's files live in a datastore, from the URIs Azure ML accepts.

    azureml://datastores/<ds>/paths/<p>
    azureml://subscriptions/<s>/resourcegroups/<g>/workspaces/<w>/datastores/<ds>/paths/<p>
    https://<account>.blob.core.windows.net/<container>/<p>   (also wasbs:// and abfss:// forms)

The first two name the datastore; an account URL names an account and container, which
`parse` returns as they are so that the caller finds the datastore registered for them.
Pure functions: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from ..domain.errors import InvalidInput

_SHORT = re.compile(r"^azureml://datastores/(?P<ds>[^/]+)/paths/(?P<path>.*)$", re.IGNORECASE)
_LONG = re.compile(r"^azureml://subscriptions/[^/]+/resource[gG]roups/[^/]+/(?:providers/Microsoft\.MachineLearningServices/)?"
                   r"workspaces/[^/]+/datastores/(?P<ds>[^/]+)/paths/(?P<path>.*)$", re.IGNORECASE)
_ACCOUNT_HOST = re.compile(r"^(?P<account>[a-z0-9]{3,24})\.(?:blob|dfs)\.(?P<endpoint>.+)$")


@dataclass(frozen=True)
class DatastorePath:
    """A path inside a datastore: by name (`datastore`), or by account and container when the
    URI was an account URL (then `datastore` is None until the caller matches them)."""
    path: str
    datastore: str | None = None
    account: str | None = None
    container: str | None = None
    endpoint: str | None = None


def is_datastore_uri(uri: str) -> bool:
    """True for the URI forms `parse` reads (a local path is anything else)."""
    return uri.lower().startswith(("azureml://", "https://", "http://", "wasbs://", "wasb://", "abfss://"))


def _clean(path: str, uri: str) -> str:
    path = unquote(path).strip("/")
    parts = path.split("/")
    if not path or any(p in ("", ".", "..") for p in parts):
        raise InvalidInput(f"datastore URI {uri!r}: path {path!r} must name a file or folder "
                           f"(no empty, '.' or '..' segments)")
    return path


def parse(uri: str) -> DatastorePath:
    """The datastore (or account and container) and path a URI names; InvalidInput naming the
    URI when it is none of the forms above."""
    for form in (_SHORT, _LONG):
        m = form.match(uri)
        if m:
            return DatastorePath(path=_clean(m["path"], uri), datastore=m["ds"])
    if uri.lower().startswith("azureml://"):
        raise InvalidInput(f"datastore URI {uri!r}: expected azureml://datastores/<name>/paths/<path> "
                           f"or azureml://subscriptions/.../workspaces/<w>/datastores/<name>/paths/<path>")
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme in ("https", "http"):
        m = _ACCOUNT_HOST.match(parts.hostname or "")
        if not m:
            raise InvalidInput(f"datastore URI {uri!r}: expected https://<account>.blob.core.windows.net/"
                               f"<container>/<path>")
        container, _, path = parts.path.lstrip("/").partition("/")
        account, endpoint = m["account"], m["endpoint"]
    elif scheme in ("wasbs", "wasb", "abfss"):  # <container>@<account>.blob.<endpoint>/<path>
        container, _, host = parts.netloc.partition("@")
        m = _ACCOUNT_HOST.match(host)
        if not m or not container:
            raise InvalidInput(f"datastore URI {uri!r}: expected {scheme}://<container>@<account>.blob."
                               f"core.windows.net/<path>")
        path, account, endpoint = parts.path, m["account"], m["endpoint"]
    else:
        raise InvalidInput(f"datastore URI {uri!r}: not an azureml:// or blob storage URL")
    if not container:
        raise InvalidInput(f"datastore URI {uri!r}: names no container")
    return DatastorePath(path=_clean(path, uri), account=account, container=container, endpoint=endpoint)
