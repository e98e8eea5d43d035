"""Workspaces: where each one lives on disk and which one a command means.

The root is ``$FLEET_HOME`` (default ``~/.modelfleet``). ``config.json`` there names the current
workspace, any created with a custom ``--path``, and the defaults `fleet configure` sets. A workspace directory holds::

    workspace.db          metadata (SQLite, WAL)
    config.json           server settings: port (kept across restarts), host, TLS, logs (0600)
    artifacts/            content-addressed model and code snapshots
    datastore.key         encrypts the datastores' stored secrets (0600; docs/datastores.md)
    run/server.json       address, pid and admin token of the running server (0600)
    logs/                 server and replica logs
    environments/         virtualenvs built for environments (docs/environments.md)

Every workspace under the root shares uv's package cache, ``$FLEET_HOME/cache/uv``
(``FLEET_UV_CACHE_DIR`` moves it), so their environments share the bytes of common packages.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..domain.errors import AlreadyExists, Conflict, NotFound
from ..files.fsutil import atomic_write, file_lock
from ..domain.names import check_name

DEFAULT = "default"


def fleet_home() -> Path:
    return Path(os.environ.get("FLEET_HOME") or Path.home() / ".modelfleet").expanduser().resolve()


def uv_cache_dir() -> Path:
    """uv's package cache, shared by every workspace (environments hard-link their files from it)."""
    return Path(os.environ.get("FLEET_UV_CACHE_DIR") or fleet_home() / "cache" / "uv").expanduser().resolve()


@dataclass(frozen=True)
class Workspace:
    name: str
    path: Path

    @property
    def db_path(self) -> Path:
        return self.path / "workspace.db"

    @property
    def db_url(self) -> str:
        return os.environ.get("FLEET_DATABASE_URL") or f"sqlite:///{self.db_path}"

    @property
    def artifacts(self) -> Path:
        return self.path / "artifacts"

    @property
    def datastore_key(self) -> Path:
        """The key datastore secrets are encrypted with (0600), beside the database, never in it."""
        return self.path / "datastore.key"

    @property
    def run_dir(self) -> Path:
        return self.path / "run"

    @property
    def logs_dir(self) -> Path:
        return self.path / "logs"

    @property
    def environments_dir(self) -> Path:
        return self.path / "environments"

    @property
    def config_file(self) -> Path:
        return self.path / "config.json"

    @property
    def server_file(self) -> Path:
        return self.run_dir / "server.json"

    @property
    def first_admin_token_file(self) -> Path:
        """The bootstrapped first admin's token (0600), written once, at the first start."""
        return self.path / "first-admin.token"

    def to_dict(self, current: str | None = None) -> dict:
        return {"name": self.name, "path": str(self.path), "current": self.name == current}


class Workspaces:
    """The set of workspaces under one FLEET_HOME."""

    def __init__(self, home: Path | None = None):
        self.home = Path(home) if home else fleet_home()
        self._config = self.home / "config.json"
        self._lock = self.home / ".config.lock"

    def _read(self) -> dict:
        try:
            return json.loads(self._config.read_text())
        except FileNotFoundError:
            return {"current": DEFAULT, "workspaces": {}}

    def _write(self, cfg: dict) -> None:
        atomic_write(self._config, json.dumps(cfg, indent=2).encode())

    def default_path(self, name: str) -> Path:
        return self.home / "workspaces" / name

    def current_name(self) -> str:
        return os.environ.get("FLEET_WORKSPACE") or self._read().get("current") or DEFAULT

    def list(self) -> list[Workspace]:
        cfg = self._read()
        found = {n: Path(v["path"]) for n, v in cfg.get("workspaces", {}).items()}
        root = self.home / "workspaces"
        if root.is_dir():
            for d in root.iterdir():
                if d.is_dir() and (d / "workspace.db").exists():
                    found.setdefault(d.name, d)
        return [Workspace(n, p) for n, p in sorted(found.items())]

    def get(self, name: str | None = None) -> Workspace:
        """The named (or current) workspace; `default` is created on first use."""
        name = check_name(name or self.current_name(), "workspace name")
        entry = self._read().get("workspaces", {}).get(name)
        if entry:
            return Workspace(name, Path(entry["path"]))
        path = self.default_path(name)
        if name == DEFAULT or (path / "workspace.db").exists():
            path.mkdir(parents=True, exist_ok=True)
            return Workspace(name, path)
        raise NotFound(f"workspace {name!r} not found; create it with: fleet workspace create --name {name}")

    def create(self, name: str, path: str | Path | None = None) -> Workspace:
        check_name(name, "workspace name")
        with file_lock(self._lock):
            cfg = self._read()
            if name in cfg.get("workspaces", {}) or (self.default_path(name) / "workspace.db").exists():
                raise AlreadyExists(f"workspace {name!r} already exists")
            ws_path = Path(path).expanduser().resolve() if path else self.default_path(name)
            if ws_path.exists() and any(ws_path.iterdir()):
                raise Conflict(f"workspace path {ws_path} is not empty")
            ws_path.mkdir(parents=True, exist_ok=True)
            cfg.setdefault("workspaces", {})[name] = {"path": str(ws_path)}
            self._write(cfg)
        return Workspace(name, ws_path)

    def set_current(self, name: str) -> Workspace:
        ws = self.get(name)
        with file_lock(self._lock):
            cfg = self._read()
            cfg["current"] = ws.name
            self._write(cfg)
        return ws

    def defaults(self) -> dict[str, str]:
        """What `fleet configure --defaults KEY=VALUE` stored (such as output=table)."""
        return dict(self._read().get("defaults", {}))

    def set_defaults(self, changes: dict[str, str]) -> dict[str, str]:
        """Store defaults; an empty value removes one (as `az configure --defaults key=` does)."""
        with file_lock(self._lock):
            cfg = self._read()
            merged = {**cfg.get("defaults", {}), **changes}
            cfg["defaults"] = {k: v for k, v in merged.items() if v}
            self._write(cfg)
        return cfg["defaults"]

    def first_time(self, what: str) -> bool:
        """True once per FLEET_HOME for `what` (a notice that needs saying only once)."""
        if what in self._read().get("said", []):
            return False
        try:
            with file_lock(self._lock):
                cfg = self._read()
                if what in cfg.get("said", []):
                    return False
                cfg["said"] = [*cfg.get("said", []), what]
                self._write(cfg)
        except OSError:
            pass   # a read-only FLEET_HOME (a client of a remote server): said every time, then
        return True

    def delete(self, name: str) -> Workspace:
        ws = self.get(name)
        with file_lock(self._lock):
            cfg = self._read()
            cfg.get("workspaces", {}).pop(name, None)
            if cfg.get("current") == name:
                cfg["current"] = DEFAULT
            self._write(cfg)
        shutil.rmtree(ws.path, ignore_errors=True)
        return ws
