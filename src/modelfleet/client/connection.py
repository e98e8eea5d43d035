"""The client's one way to the server: HTTP, with the admin token, over any httpx transport.

Where the server is comes from a `locate` callable: the launcher's (the workspace's own server on
this machine, started on first need), a fixed address (`FLEET_SERVER` + `FLEET_TOKEN`), or an
in-process app behind `httpx.ASGITransport` in unit tests. Errors come back as the one error
tree (`errors.from_dict`), with the status the server answered.
"""

from __future__ import annotations

import contextlib
import ssl
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator

from ..domain import errors
from ..domain.errors import FleetError, ServerUnavailable

if TYPE_CHECKING:  # httpx loads when the first request goes out: the CLI starts faster
    import httpx

TIMEOUT_S, CONNECT_TIMEOUT_S = 60.0, 5.0


@dataclass(frozen=True)
class Target:
    """A server to talk to: its address, its admin token, and what to trust over TLS."""
    url: str
    token: str
    verify: ssl.SSLContext | bool = field(default=True, compare=False)
    ca_bundle: str | None = field(default=None, compare=False)   # named in the error when it does not vouch
    pid: int | None = None   # a local server's process: a new one means a new connection


def _unreachable(e: Exception, url: str, ca_bundle: str | None) -> ServerUnavailable:
    from .tls import untrusted
    return untrusted(e, url, ca_bundle) or ServerUnavailable(f"cannot reach the server at {url}: {e}")


def _error(status: int, body: Any, text: str) -> FleetError:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = errors.from_dict(body["error"])
    else:
        err = FleetError(f"server answered {status}" + (f": {text[:200]}" if text else ""))
    err.http_status = status  # what the server said, whatever the class's usual status
    return err


def workspace_prefix(workspace: str | None) -> str:
    """Where a server answers for one of the workspaces it hosts; "" for the one it was started on."""
    return f"/workspaces/{workspace}" if workspace else ""


class Connection:
    def __init__(self, locate: Callable[[], Target], transport: httpx.BaseTransport | None = None,
                 workspace: str | None = None):
        """`workspace`: every request goes under that workspace's prefix on the server (None: the
        server's primary workspace, unprefixed)."""
        self._locate = locate
        self._transport = transport
        self.prefix = workspace_prefix(workspace)
        self._client: httpx.Client | None = None
        self._target: Target | None = None
        self._lock = threading.Lock()   # threads of one Fleet (apply's) find or start one server

    @property
    def url(self) -> str:
        return self._target.url + self.prefix if self._target else "(not connected)"

    def server_wide(self, path: str) -> str:
        """`path` on the server itself, not under the workspace's prefix (the workspaces it hosts)."""
        self.client()
        return self._target.url + path

    def client(self) -> httpx.Client:
        """The HTTP client for the server as it is now (located again: a restarted local server
        has a new port and token)."""
        import httpx
        with self._lock:
            target = self._locate()
            if self._client is None or target != self._target:
                if self._client is not None:
                    self._client.close()
                self._client = httpx.Client(base_url=target.url + self.prefix, transport=self._transport,
                                            timeout=httpx.Timeout(TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
                                            headers={"authorization": f"Bearer {target.token}"},
                                            verify=target.verify)
                self._target = target
            return self._client

    def request(self, method: str, path: str, *, json: Any = None, params: dict | None = None,
                timeout: float | None = None, headers: dict | None = None, content: Any = None) -> Any:
        import httpx
        client = self.client()
        try:
            r = client.request(method, path, json=json, params=params, headers=headers, content=content,
                               timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT)
        except httpx.HTTPError as e:
            raise self._unreachable(e) from None
        try:
            body = r.json() if r.content else None
        except ValueError:
            raise _error(r.status_code, None, r.text) from None
        if r.status_code >= 400:
            raise _error(r.status_code, body, "")
        return body

    @contextlib.contextmanager
    def stream(self, method: str, path: str, *, json: Any = None, params: dict | None = None,
               timeout: float | None = None) -> Iterator[httpx.Response]:
        """A response whose body is read as it comes (logs followed, build progress, downloads);
        an error status raises before the caller reads anything."""
        import httpx
        client = self.client()
        try:
            with client.stream(method, path, json=json, params=params,
                               timeout=httpx.Timeout(timeout, connect=CONNECT_TIMEOUT_S)) as r:
                if r.status_code >= 400:
                    r.read()
                    try:
                        body = r.json() if r.content else None
                    except ValueError:
                        body = None
                    raise _error(r.status_code, body, "" if body else r.text)
                yield r
        except httpx.HTTPError as e:
            raise self._unreachable(e) from None

    def send(self, request: httpx.Request, timeout: float) -> httpx.Response:
        """A request built by the caller (scoring: the endpoint's key, not the admin token)."""
        import httpx
        client = self.client()
        request.extensions["timeout"] = httpx.Timeout(timeout).as_dict()
        try:
            return client.send(request)
        except httpx.HTTPError as e:
            raise self._unreachable(e) from None

    def _unreachable(self, e: Exception) -> ServerUnavailable:
        return _unreachable(e, self.url, self._target.ca_bundle if self._target else None)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
            self._target = None
