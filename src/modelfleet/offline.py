"""Read-only control-API answers from the workspace's store while its server is stopped.

`list`, `show`, `get-credentials` and `get-logs` only read: they must not start a server (and
with it every replica) as a side effect. The SDK answers their GET requests here instead, with the
same views the server builds, minus what only a running server knows (replicas, live figures).
"""

from __future__ import annotations

import re
from typing import Any, Callable

from . import logfmt
from .errors import ServerUnavailable
from .server import replica_logs, views
from .server import settings as server_settings
from .store.serving import ServingStore
from .workspace import Workspace


class OfflineReader:
    def __init__(self, ws: Workspace, serving: ServingStore):
        self.ws = ws
        self.serving = serving
        cfg = server_settings.load(ws)
        self.public_url = cfg.url(cfg.port) if cfg.port else None  # kept across restarts
        self.routes: list[tuple[re.Pattern, Callable[..., Any]]] = [
            (re.compile(p), fn) for p, fn in (
                (r"/api/endpoints", self.endpoints),
                (r"/api/endpoints/([^/]+)", self.endpoint),
                (r"/api/endpoints/([^/]+)/keys", self.keys),
                (r"/api/deployments", self.deployments),
                (r"/api/endpoints/([^/]+)/deployments", self.deployments),
                (r"/api/endpoints/([^/]+)/deployments/([^/]+)", self.deployment),
                (r"/api/endpoints/([^/]+)/deployments/([^/]+)/logs", self.logs),
            )]

    def get(self, path: str, params: dict | None = None) -> Any:
        params = params or {}
        for pattern, fn in self.routes:
            m = pattern.fullmatch(path)
            if m and not params.get("wait") and not params.get("follow"):  # those need the server
                return fn(*m.groups(), **{k: v for k, v in params.items() if k in ("lines", "since")})
        raise ServerUnavailable(f"the server of workspace {self.ws.name!r} is not running; "
                                "start it with: fleet server start")

    def _endpoint_view(self, ep: dict, names: list[str]) -> dict:
        return views.endpoint_view(ep, names, self.public_url)

    def endpoints(self) -> list[dict]:
        names: dict[str, list[str]] = {}
        for d in self.serving.deployments():
            names.setdefault(d["endpoint"], []).append(d["name"])
        return [self._endpoint_view(e, names.get(e["name"], [])) for e in self.serving.endpoints()]

    def endpoint(self, name: str) -> dict:
        ep = self.serving.endpoint(name)
        return self._endpoint_view(ep, [d["name"] for d in self.serving.deployments(name)])

    def keys(self, name: str) -> dict:
        ep = self.serving.endpoint(name)
        return {"primaryKey": ep["primary_key"], "secondaryKey": ep["secondary_key"]}

    def deployments(self, endpoint: str | None = None) -> list[dict]:
        if endpoint is not None:
            self.serving.endpoint(endpoint)
        return [views.deployment_view(d, [], False) for d in self.serving.deployments(endpoint)]

    def deployment(self, endpoint: str, name: str) -> dict:
        return views.deployment_view(self.serving.deployment(endpoint, name), [], False)

    def logs(self, endpoint: str, name: str, lines: int = 100, since: str | None = None) -> dict:
        self.serving.deployment(endpoint, name)
        start = logfmt.since(since) if since else None
        return {"logs": replica_logs.read(self.ws.logs_dir / endpoint / name, int(lines), set(), start)}
