"""A workspace's server settings, kept in ``<workspace>/config.json`` so the server comes back
the same after a restart, a crash or an auto-start: same address (so scoring URIs stay valid),
same TLS files, same log and metrics choices.

The port is chosen once: the first start takes a free port and saves it; `fleet server start
--port N` or `fleet server configure --port N` changes it (`--port 0`: pick a new free one).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..domain.errors import InvalidInput
from ..files.fsutil import atomic_write, file_lock
from .database_url import engine_url, redact
from .deployment_settings import memory_bytes
from .workspace import Workspace


class ServerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    host: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=0, le=65535)   # None (or 0): a free port, then saved
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    allow_open_endpoints: bool = False   # auth_mode none endpoints beyond loopback
    allow_plain_http: bool = False       # beyond loopback without TLS (a TLS proxy in front)
    admin_token_file: str | None = None  # a fixed admin token (default: a new one per start)
    metrics_auth: Literal["auto", "token", "none"] = "auto"  # auto: open on loopback only
    # Failed token attempts one client address may make per minute (in a burst, then spread out)
    # before every request from it gets 429 for a while.
    failed_token_attempts_per_minute: int = Field(default=30, ge=1, le=1_000_000)
    access_log: bool = True
    access_log_max_bytes: int = Field(default=64 * 2**20, ge=4096)
    access_log_backups: int = Field(default=5, ge=0, le=1000)
    drain_timeout_s: float = Field(default=30.0, ge=0, le=3600)  # SIGTERM: wait this long for requests
    # Connection limits (server/connections.py): a connection with no request is closed after
    # idle_timeout_s; a request's headers must arrive within header_timeout_s (and its body may
    # not pause longer); beyond max_connections the oldest idle connection is closed.
    idle_timeout_s: float = Field(default=75.0, gt=0, le=3600)
    header_timeout_s: float = Field(default=10.0, gt=0, le=600)
    max_connections: int = Field(default=10_000, ge=16, le=1_000_000)
    shared_workers: int | None = Field(default=None, ge=1, le=256)  # None: one per core, 2 to 8
    shared_worker_memory: str = "1Gi"    # each shared worker's budget for loaded models
    # The Python an environment pins (interpreters.py): looked for on the machine and in `pythons`
    # (interpreter paths); missing, `nearest` builds on the nearest version found (with a warning),
    # `strict` refuses; `python_downloads` lets `uv python install` fetch a missing one.
    python_policy: Literal["nearest", "strict"] = "nearest"
    pythons: list[str] = Field(default_factory=list)
    python_downloads: bool = False
    # Each node's cache of datastore blobs (docs/datastores.md): its bound. Least recently used
    # blobs go first; blobs a replica uses are never evicted.
    node_cache_size: str = "20Gi"
    # Where the metadata lives: None is the workspace's SQLite file; postgresql://USER@HOST/DB
    # a PostgreSQL database (its password from ~/.pgpass or PGPASSWORD, or in the URL).
    database_url: str | None = None
    # Several servers on one PostgreSQL database: the controller's lease lasts this long without a
    # renewal (renewed every quarter of it); a follower takes over within about this long of the
    # leader's death. Shorter fails over faster and writes to the database more often.
    lease_duration_s: float = Field(default=6.0, ge=1, le=300)

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                engine_url(v)
            except InvalidInput as e:
                raise ValueError(str(e)) from None
        return v

    def database(self, ws: Workspace) -> str:
        """The database the server opens: FLEET_DATABASE_URL (which ws.db_url reads) first, then
        the saved --database-url, then the workspace's SQLite file."""
        if self.database_url and "FLEET_DATABASE_URL" not in os.environ:
            return self.database_url
        return ws.db_url

    def shown(self) -> dict:
        """The settings as `fleet server configure` prints them: a database password hidden."""
        out = self.model_dump()
        if self.database_url:
            out["database_url"] = redact(self.database_url)
        return out

    @field_validator("shared_worker_memory", "node_cache_size")
    @classmethod
    def _budget(cls, v: str) -> str:
        if memory_bytes(v) < 2**20:
            raise ValueError("must be at least 1Mi")
        return v

    @property
    def node_cache_bytes(self) -> int:
        return memory_bytes(self.node_cache_size)

    @property
    def shared_worker_memory_bytes(self) -> int:
        return memory_bytes(self.shared_worker_memory)

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        v = v.strip().strip("[]")
        if not v or any(c.isspace() or c in "/?#@" for c in v):
            raise ValueError("must be an IP address or a host name")
        return v

    @property
    def tls(self) -> bool:
        return self.ssl_certfile is not None

    def check_files(self) -> None:
        """TLS takes both files; each must be readable. Errors name the setting and the path."""
        for name in ("ssl_certfile", "ssl_keyfile", "admin_token_file"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise InvalidInput(f"{name}: file {path!r} not found")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise InvalidInput("TLS needs both --ssl-certfile and --ssl-keyfile")

    def url(self, port: int) -> str:
        """Where clients connect: a wildcard listen address means loopback for local clients."""
        where = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        if ":" in where:
            where = f"[{where}]"
        return f"{'https' if self.tls else 'http'}://{where}:{port}"


def load(ws: Workspace) -> ServerSettings:
    try:
        raw = json.loads(ws.config_file.read_text())
    except FileNotFoundError:
        return ServerSettings()
    except (OSError, ValueError) as e:
        raise InvalidInput(f"{ws.config_file}: cannot read the workspace settings ({e})") from None
    try:
        return ServerSettings.model_validate(raw.get("server", {}))
    except ValidationError as e:
        raise InvalidInput(f"{ws.config_file}: {_first_error(e)}") from None


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    loc = ".".join(str(x) for x in err["loc"])
    return f"server.{loc}: {err['msg'].removeprefix('Value error, ')}" if loc else err["msg"]


def _clean(changes: dict) -> dict:
    """Drop the changes that are None; make file paths absolute (the server runs elsewhere);
    "" clears a file setting; port 0 means a new free port."""
    changes = {k: v for k, v in changes.items() if v is not None}
    for name in ("ssl_certfile", "ssl_keyfile", "admin_token_file"):
        if changes.get(name):
            changes[name] = str(Path(changes[name]).expanduser().resolve())
        elif name in changes:
            changes[name] = None
    if changes.get("port") == 0:
        changes["port"] = None
    if "pythons" in changes:   # interpreter paths, absolute; '' clears the list
        changes["pythons"] = [str(Path(p).expanduser().absolute()) for p in changes["pythons"] if p]
    if changes.get("database_url") == "":
        changes["database_url"] = None
    return changes


def _merge(current: ServerSettings, changes: dict) -> ServerSettings:
    try:
        new = ServerSettings.model_validate({**current.model_dump(), **_clean(changes)})
    except ValidationError as e:
        raise InvalidInput(_first_error(e).removeprefix("server.")) from None
    new.check_files()
    return new


def merged(ws: Workspace, changes: dict) -> ServerSettings:
    """The saved settings with `changes` applied and checked, not saved."""
    return _merge(load(ws), changes)


def update(ws: Workspace, **changes) -> ServerSettings:
    """Apply the changes that are not None, check, save; nothing is saved when one is wrong."""
    with file_lock(ws.path / ".config.lock"):
        current = load(ws)
        new = _merge(current, changes)
        if new != current:
            save(ws, new)
    return new


def save(ws: Workspace, settings: ServerSettings) -> None:
    try:
        doc = json.loads(ws.config_file.read_text())
    except (OSError, ValueError):
        doc = {}
    doc["server"] = settings.model_dump(exclude_defaults=True)
    atomic_write(ws.config_file, json.dumps(doc, indent=2).encode() + b"\n", mode=0o600)
