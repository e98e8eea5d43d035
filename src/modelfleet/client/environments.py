"""`fleet.environments`: environment versions and their builds, over the control API.

The client reads a new version's files (a conda file, a requirements.txt) itself and sends what
they ask for; the server registers it. Building is the server's: `build` streams the server's
progress (uv's own lines) to a callback, then returns what was built; deployments build their
environment the same way before they are written.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import orjson

from ..domain import errors
from ..schema.environment_files import content_of
from ..schema.records import Environment
from ..domain.errors import ServerUnavailable

if TYPE_CHECKING:
    from ..schema.documents import EnvironmentSpec


class EnvironmentOperations:
    def __init__(self, fleet):
        self._f = fleet

    def create(self, name: str | None = None, *, version: str | int | None = None, conda_file: str | dict | None = None,
               requirements: str | list[str] | None = None, image: str | None = None, description: str = "",
               tags: dict | None = None, spec: EnvironmentSpec | None = None, base_dir: str | Path = ".",
               exist_ok: bool = False) -> Environment:
        """A new immutable version from a conda file (path or document), a requirements.txt path or
        a list of requirements; `spec` is a validated environment YAML (paths relative to `base_dir`)."""
        from ..schema.documents import EnvironmentSpec
        from ..schema.validation import validate
        if spec is None:
            fields = dict(name=name, version=version, conda_file=conda_file, requirements=requirements, image=image,
                          description=description, tags=tags or {})
            spec = validate(EnvironmentSpec, {k: v for k, v in fields.items() if v is not None})
        return self._register(spec, Path(base_dir), exist_ok=exist_ok)

    def inline(self, spec: EnvironmentSpec, base_dir: Path) -> Environment:
        """A deployment's inline `environment:` block, registered as the version it becomes."""
        return self._register(spec, base_dir, inline=True)

    def _register(self, spec: EnvironmentSpec, base_dir: Path, *, exist_ok: bool = False,
                  inline: bool = False) -> Environment:
        content, source = content_of(spec, base_dir)
        body = {"name": spec.name, "version": spec.version, "image": spec.image, "description": spec.description,
                "tags": spec.tags, "content": content.to_dict(), "source": source, "exist_ok": exist_ok,
                "inline": inline}
        return Environment.from_dict(self._f.request("POST", "/api/environments", json=body))

    def of_model(self, model: str, env_manager: str | None) -> Environment | None:
        """The environment an MLflow model logged for itself, as `env_manager` reads it; with no
        env_manager, that environment only when the server lacks the model's flavour (else None)."""
        found = self._f.request("POST", "/api/environments/of-model", json={"model": model, "env_manager": env_manager})
        return None if found is None else Environment.from_dict(found)

    def runs_on_default(self, image: str) -> str:
        """Why a deployment whose environment is only `image` (not one of Azure's inference images)
        runs on the default environment; the server's strict python_policy refuses it instead."""
        return self._f.request("POST", "/api/environments/image", json={"image": image})["runs_on_default"]

    def get(self, name: str, version: str | None = None) -> Environment:
        return self.resolve(f"{name}:{version}" if version is not None else f"{name}@latest")

    def resolve(self, ref: str) -> Environment:
        """`azureml:NAME:VERSION`, `NAME:VERSION` or `NAME@latest`."""
        return Environment.from_dict(self._f.request("GET", f"/api/environments/{ref}"))

    def list(self, name: str | None = None, include_archived: bool = False) -> list[Environment]:
        params = {"include_archived": str(include_archived).lower(), **({"name": name} if name else {})}
        return [Environment.from_dict(e) for e in self._f.request("GET", "/api/environments", params=params)]

    def archive(self, name: str, version: str) -> Environment:
        """Hide a version from list and @latest; its build may then be collected (`gc`)."""
        return Environment.from_dict(self._f.request("PUT", f"/api/environments/{name}/versions/{version}/archived",
                                                     json={"archived": True}))

    def restore(self, name: str, version: str) -> Environment:
        return Environment.from_dict(self._f.request("PUT", f"/api/environments/{name}/versions/{version}/archived",
                                                     json={"archived": False}))

    def build(self, ref: str, *, compute: str = "local", progress: Callable[[str], None] | None = None) -> dict:
        """Have the server resolve and build `ref` (or find it built); each line of its progress
        goes to `progress` (default: this Fleet's notices). `compute` other than local only
        resolves: Ray builds the environment on its nodes."""
        env = self.resolve(ref)
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
        with self._f.connection.stream("POST", path, json=body) as r:
            for line in r.iter_lines():
                if line.strip():
                    yield orjson.loads(line)
