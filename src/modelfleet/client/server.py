"""`fleet.server`: start, stop, status and saved settings of the workspace's server.

A local workspace's server is the launcher's to start and stop; its saved settings are a file of
the workspace (they apply at the next start, so changing them starts nothing). A remote server
(`FLEET_SERVER`) is started and stopped where it runs: its settings go over the control API.
"""

from __future__ import annotations

from ..domain.errors import Conflict
from . import launcher


class ServerOperations:
    def __init__(self, fleet):
        self._f = fleet

    def _local(self, what: str):
        ws = self._f.workspace
        if ws is None:
            raise Conflict(f"the server at {self._f.connection.url} runs elsewhere: {what} it where it runs")
        return ws

    def start(self, **changes) -> tuple[dict, bool]:
        """Start with the saved settings plus `changes` (host, port, ssl_certfile, ...; saved once
        the server listens). Already running: the changes are saved for the next start."""
        ws = self._local("start")
        info, started = launcher.start(ws, changes)
        if not started and changes:
            from ..schema import server_settings as settings
            settings.update(ws, **changes)
        return info.to_dict(), started

    def join(self, **changes) -> dict:
        """Start another server for this workspace beside the running one (PostgreSQL only)."""
        return launcher.join(self._local("join"), changes).to_dict()

    def list(self) -> list[dict]:
        """The workspace's servers: address, host and pid, leader or follower and since when, last heartbeat."""
        return self._f.request("GET", "/api/servers")

    def stop(self) -> dict | None:
        info = launcher.stop(self._local("stop"))
        return info.to_dict() if info else None

    def status(self, show_token: bool = False) -> dict:
        """Running or not, and where; `show_token` adds the admin token, which only the owner of
        the workspace folder can read (run/server.json is 0600)."""
        if self._f.workspace is None:
            health = self._f.request("GET", "/api/health")
            return {"status": "running", "url": self._f.connection.url, "healthy": health["status"] == "ok",
                    "workspace": health["workspace"]}
        ws = self._f.workspace
        info = launcher.read_info(ws)
        if info is None:
            return {"status": "stopped", "workspace": ws.name}
        d = info.to_dict(secrets=show_token)
        d["healthy"] = launcher.healthy(info)
        d["workspace"] = ws.name
        return d

    def stats(self, endpoint: str | None = None, series: int = 0) -> dict:
        """Live figures over the last minute (req/s, p50, p99, errors, in flight, queued,
        replicas by state) per endpoint and deployment."""
        params = {"series": series, **({"endpoint": endpoint} if endpoint else {})}
        return self._f.request("GET", "/api/stats", params=params)

    def configure(self, **changes) -> dict:
        """The saved server settings, after applying `changes` (they apply at the next start)."""
        if self._f.workspace is None:
            return self._f.request("PATCH", "/api/server/settings", json={k: v for k, v in changes.items()
                                                                         if v is not None})
        from ..schema import server_settings as settings
        return settings.update(self._f.workspace, **changes).shown()
