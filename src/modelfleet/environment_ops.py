"""`fleet.environments`: environments in the Python API.

Creating, showing, listing and archiving versions are registry work, done in the workspace's store
(no server needed, like models). Building is the server's: `build` streams the server's progress
(uv's own lines) to a callback, then returns what was built; deployments build their environment
the same way before they are written.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import orjson

from . import errors
from .errors import FleetError, ServerUnavailable

if TYPE_CHECKING:
    from .environments import Environment, Environments
    from .specs import EnvironmentSpec


class EnvironmentOperations:
    def __init__(self, fleet):
        self._f = fleet

    @property
    def _envs(self) -> Environments:
        return self._f.environment_registry

    def create(self, name: str | None = None, *, version: str | int | None = None, conda_file: str | dict | None = None,
               requirements: str | list[str] | None = None, image: str | None = None, description: str = "",
               tags: dict | None = None, spec: EnvironmentSpec | None = None, base_dir: str | Path = ".",
               exist_ok: bool = False) -> Environment:
        """A new immutable version from a conda file (path or document), a requirements.txt path or
        a list of requirements; `spec` is a validated environment YAML (paths relative to `base_dir`)."""
        from .specs import EnvironmentSpec, validate
        if spec is None:
            fields = dict(name=name, version=version, conda_file=conda_file, requirements=requirements, image=image,
                          description=description, tags=tags or {})
            spec = validate(EnvironmentSpec, {k: v for k, v in fields.items() if v is not None})
        return self._envs.describe(self._envs.create(spec, Path(base_dir), exist_ok=exist_ok))

    def get(self, name: str, version: str | None = None) -> Environment:
        return self._envs.describe(self._envs.get(f"{name}:{version}" if version is not None else f"{name}@latest"))

    def resolve(self, ref: str) -> Environment:
        """`azureml:NAME:VERSION`, `NAME:VERSION` or `NAME@latest`."""
        return self._envs.describe(self._envs.get(ref))

    def list(self, name: str | None = None, include_archived: bool = False) -> list[Environment]:
        return [self._envs.describe(e) for e in self._envs.list(name, include_archived)]

    def archive(self, name: str, version: str) -> Environment:
        """Hide a version from list and @latest; its build may then be collected (`gc`)."""
        return self._envs.describe(self._envs.set_archived(name, version, True))

    def restore(self, name: str, version: str) -> Environment:
        return self._envs.describe(self._envs.set_archived(name, version, False))

    def build(self, ref: str, *, compute: str = "local", progress: Callable[[str], None] | None = None) -> dict:
        """Have the server resolve and build `ref` (or find it built); each line of its progress
        goes to `progress` (default: this Fleet's notices). `compute` other than local only
        resolves: Ray builds the environment on its nodes."""
        env = self._envs.get(ref)
        say = progress or self._f.notice
        said = False
        for event in self._stream("/api/environments/build", {"environment": env.ref, "compute": compute}):
            if "progress" in event:
                say(f"{env.ref}: {event['progress']}")
                said = True
            elif "error" in event:  # uv's output, the error's detail, was just shown line by line
                raise errors.from_dict({**event["error"], "detail": None} if said else event["error"])
            elif "done" in event:
                return event["done"]
        raise ServerUnavailable(f"the server stopped while building {env.ref}")

    def gc(self, *, cache: bool = False) -> dict:
        """Remove the builds that no deployment uses and no named, unarchived version keeps (and,
        with `cache`, empty uv's package cache); the bytes freed."""
        return self._f.request("POST", "/api/environments/gc", json={"cache": cache}, timeout=600)

    def _stream(self, path: str, body: dict) -> Iterator[dict]:
        import httpx
        self._f._server()
        try:
            with self._f._http.stream("POST", path, json=body, timeout=httpx.Timeout(None, connect=5.0)) as r:
                if r.status_code >= 400:
                    r.read()
                    doc = r.json() if r.content else {}
                    if isinstance(doc.get("error"), dict):
                        raise errors.from_dict(doc["error"])
                    raise FleetError(f"server answered {r.status_code}")
                for line in r.iter_lines():
                    if line.strip():
                        yield orjson.loads(line)
        except httpx.HTTPError as e:
            raise ServerUnavailable(f"cannot reach the server at {self._f._info.url}: {e}") from None
