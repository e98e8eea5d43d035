"""Environments: a registry asset (immutable, versioned sets of packages) and their builds.

    create / get / list / archive   Azure's `environment` (conda_file, image), or a requirements.txt
    prepare(ref)                    the interpreter (interpreters.py), the resolution (once per version
                                    and interpreter: its lock), then the virtualenv
                                    (backends/envbuild.py), unless already built
    for_replicas(ref)               what a replica needs to run in it; rebuilt if it went missing
    collect()                       remove the builds no deployment and no environment version uses

Inline environments (Azure's `environment: {conda_file: ...}` in a deployment) and those an MLflow
model logged for itself (`--env-manager`) are versions of the anonymous environment, named as
Azure names it and versioned by their content's hash, so equal content is one version however
often it is deployed. Anonymous versions keep their build only while a deployment uses them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import mlflow_flavours
from ..backends.base import ReplicaEnvironment
from ..domain import curated
from ..envbuild.builder import Builder, Interpreter, disk_usage
from ..envbuild.interpreters import Choice, Policy
from ..schema.environment_files import ANONYMOUS, EnvironmentContent, content_of, read_mlflow_model
from ..domain.errors import InvalidInput, NotFound
from ..domain.names import ModelRef, check_name, check_version
from ..schema.documents import EnvironmentSpec
from ..store import Database
from ..store.environments import Environment, EnvironmentStore
from ..store.serving import ServingStore
from ..schema.workspace import Workspace, uv_cache_dir

__all__ = ["ANONYMOUS", "Environment", "Environments", "Prepared"]


Progress = Callable[[str], None]


def _quiet(_line: str) -> None:
    pass


@dataclass(frozen=True)
class Prepared:
    """An environment ready for replicas: resolved, and built when replicas run on this machine."""
    ref: str
    key: str
    requirements: tuple[str, ...]
    python: Path | None
    cached: bool       # nothing had to be resolved or installed
    seconds: float
    python_version: str = ""
    warning: str | None = None   # the interpreter is not the one the environment asked for

    def to_dict(self) -> dict:
        return {"environment": self.ref, "key": self.key, "python": str(self.python) if self.python else None,
                "python_version": self.python_version, "warning": self.warning,
                "packages": len([r for r in self.requirements if not r.startswith("-")]), "cached": self.cached,
                "seconds": round(self.seconds, 3)}


class Environments:
    def __init__(self, db: Database, root: Path, cache: Path, interpreter: Interpreter | None = None,
                 policy: Policy | None = None):
        self.db = db
        self.store = EnvironmentStore(db)
        self.builder = Builder(root, cache, interpreter)
        self.policy = policy or Policy(server=self.builder.interpreter)

    @classmethod
    def of_workspace(cls, ws: Workspace, db: Database, policy: Policy | None = None) -> Environments:
        return cls(db, ws.environments_dir, uv_cache_dir(), policy=policy)

    # -- the registry --------------------------------------------------------------------------

    def create(self, spec: EnvironmentSpec, base_dir: Path = Path("."), *, exist_ok: bool = False) -> Environment:
        return self.add(spec, *content_of(spec, base_dir), exist_ok=exist_ok)

    def add(self, spec: EnvironmentSpec, content: EnvironmentContent, source: dict, *,
            exist_ok: bool = False) -> Environment:
        """A new version of `spec`'s name, holding `content` (read by `content_of`, here or by a client)."""
        check_name(spec.name, "environment name")
        if spec.version is not None:
            check_version(spec.version)
        return self.store.add(spec.name, spec.version, content=content.to_dict(), sha256=content.sha256,
                              source=source, image=spec.image, description=spec.description, tags=spec.tags,
                              exist_ok=exist_ok)

    def runs_on_default(self, spec: EnvironmentSpec) -> str | None:
        """Why a deployment's environment block is the default environment (the server's Python and
        packages): an image that is not one of Azure's inference images, with no conda file. The
        strict python_policy refuses it instead."""
        if spec.conda_file is not None or spec.requirements is not None or curated.is_inference_image(spec.image):
            return None
        if self.policy.mode == "strict":
            raise InvalidInput(f"environment image {spec.image!r} cannot run here (no Docker) and is not one of "
                               f"Azure's inference images ({curated.INFERENCE_IMAGES}...); python_policy strict: "
                               "give a conda_file with the packages it needs")
        return (f"environment image {spec.image!r} is not one of Azure's inference images "
                f"({curated.INFERENCE_IMAGES}...): the deployment runs on the default environment (the server's "
                "Python and packages); give a conda_file for other packages")

    def inline(self, spec: EnvironmentSpec, base_dir: Path = Path(".")) -> Environment:
        return self.add_inline(spec, *content_of(spec, base_dir))

    def add_inline(self, spec: EnvironmentSpec, content: EnvironmentContent, source: dict) -> Environment:
        """A deployment's inline `environment:` block: the anonymous version of its content, or,
        when it has a name, that version (or the newest one with the same content, or the next)."""
        if spec.name is None:
            return self.anonymous(content, source, spec.image, spec.description)
        if spec.version is None:
            same = [e for e in self.store.list(spec.name, include_archived=True) if e.sha256 == content.sha256]
            if same:
                return same[-1]
        return self.store.add(spec.name, spec.version, content=content.to_dict(), sha256=content.sha256,
                              source=source, image=spec.image, description=spec.description, tags=spec.tags,
                              exist_ok=True)

    def anonymous(self, content: EnvironmentContent, source: dict, image: str | None = None,
                  description: str = "") -> Environment:
        return self.store.add(ANONYMOUS, content.sha256[:32], content=content.to_dict(), sha256=content.sha256,
                              source=source, image=image, description=description, tags={}, exist_ok=True)

    def anonymous_ref(self, spec: EnvironmentSpec, base_dir: Path) -> str:
        """The version an inline block without a name becomes, without registering it (for plans)."""
        return f"{ANONYMOUS}:{content_of(spec, base_dir)[0].sha256[:32]}"

    def for_mlflow_model(self, model_ref: str, model_dir: Path, manager: str) -> Environment:
        """The environment an MLflow model logged for itself, read as MLflow's `manager` reads it."""
        content = read_mlflow_model(model_dir, manager, f"model {model_ref}")
        return self.anonymous(content, {"mlflow_model": model_ref, "env_manager": manager},
                              description=f"the environment model {model_ref} logged ({manager})")

    def curated(self, entry: curated.Curated, asked: str) -> Environment:
        """The version a curated environment of Azure's maps to, registered on first use."""
        content = EnvironmentContent(entry.requirements, python=entry.python)
        return self.store.add(entry.registered_name, entry.version, content=content.to_dict(),
                              sha256=content.sha256, source={"curated": asked, "mapped_to": entry.mapped_to()},
                              image=None, description=f"Azure's curated environment {entry.name}, as packages "
                                                      "built with uv", tags={}, exist_ok=True)

    def for_mlflow_flavour(self, model_ref: str, model_dir: Path) -> Environment | None:
        """An MLflow model's own environment when this server lacks its flavour's package (what
        Azure does for no-code MLflow deployments): its conda.yaml, else its requirements.txt."""
        missing = mlflow_flavours.missing_package(model_dir)
        if missing is None:
            return None
        manager = "conda" if mlflow_flavours.logged_conda(model_dir) else "uv"
        content = read_mlflow_model(model_dir, manager, f"model {model_ref}")
        return self.anonymous(content, {"mlflow_model": model_ref, "env_manager": manager, "because": missing},
                              description=f"the environment model {model_ref} logged ({manager}), used because "
                                          f"the server lacks {missing}")

    def get(self, ref: str | ModelRef) -> Environment:
        if isinstance(ref, str) and curated.registry_uri(ref):
            entry = curated.lookup(ref)
            if entry is None:
                raise InvalidInput(f"environment {ref!r}: not a curated environment of Azure's registry")
            return self.curated(entry, ref)
        if isinstance(ref, str) and "azureml-" in ref.lower() and self._own(ModelRef.parse(ref, "environment")) is None:
            entry = curated.lookup(ref)   # AzureML-NAME: curated, unless the workspace has its own of that name
            if entry is not None:
                return self.curated(entry, ref)
        r = ref if isinstance(ref, ModelRef) else ModelRef.parse(ref, "environment")
        if r.version is not None:
            env = self.store.version(r.name, r.version)
        elif r.label in (None, "latest"):
            env = self.store.latest(r.name)
        else:
            raise InvalidInput(f"environment {r}: environments have no labels; use NAME:VERSION or NAME@latest")
        if env is None:
            raise NotFound(f"environment {r} not found (fleet environment create --name {r.name} ...)")
        return env

    def _own(self, r: ModelRef) -> Environment | None:
        if r.version is not None:
            return self.store.version(r.name, r.version)
        return self.store.latest(r.name)

    def list(self, name: str | None = None, include_archived: bool = False) -> list[Environment]:
        return self.store.list(name, include_archived)

    def set_archived(self, name: str, version: str, archived: bool) -> Environment:
        self.store.set_archived(name, version, archived)
        return self.get(ModelRef(name, version=version))

    def describe(self, env: Environment) -> Environment:
        """`env` with the interpreter it gets here and where its build is, when it has one."""
        try:
            choice: Choice | None = self.interpreter_of(env)
        except InvalidInput as e:   # strict, and not installed: say so rather than fail `show`
            choice, refused = None, e.message
        else:
            refused = None
        key = self._key(env, choice) if choice else None
        built = key is not None and self.builder.is_built(key)
        env.extra = {"requirements": env.content.get("requirements", []), "python": env.content.get("python"),
                     "interpreter": ({"version": choice.interpreter.version,
                                      "executable": choice.interpreter.executable} if choice else None),
                     "warning": choice.note if choice else refused,
                     "built": built,
                     "path": str(self.builder.path(key)) if built else None}
        return env

    # -- builds --------------------------------------------------------------------------------

    def interpreter_of(self, env: Environment) -> Choice:
        """The Python `env` runs on here (InvalidInput under the strict policy when it is missing)."""
        return self.policy.choose(env.content.get("python"), f"environment {env.ref}")

    def _key(self, env: Environment, choice: Choice | None = None) -> str | None:
        lock = env.lock
        it = (choice or self.interpreter_of(env)).interpreter
        if not lock or (lock.get("python"), lock.get("platform")) != (it.minor, it.platform):
            return None
        return self.builder.key(lock, it)

    def prepare(self, env: Environment | str, *, build: bool = True, progress: Progress = _quiet) -> Prepared:
        """Resolve `env` (once per version and interpreter) and build its virtualenv unless it is
        there already (`build=False` only resolves, for the server's Python: for replicas that a
        backend builds elsewhere, on its nodes' Python). Refuses a Python pin not installed here
        under the strict policy; raises BuildFailed naming the package otherwise."""
        started = time.monotonic()
        env = self.get(env) if isinstance(env, str) else env
        content = EnvironmentContent.from_dict(env.content)
        what = f"environment {env.ref}"
        choice = self.interpreter_of(env) if build else Choice(self.builder.interpreter)
        it = choice.interpreter
        if choice.note:
            progress(f"warning: {what}: {choice.note}")
        key = self._key(env, choice)
        cached = key is not None and (not build or self.builder.is_built(key))
        if key is None:
            progress(f"resolving {len(content.requirements)} requirements of {what} for Python {it.version}")
            lock = self.builder.resolve(list(content.requirements), list(content.options), what, progress,
                                        content.from_conda, it)
            env = self.store.set_lock(env.name, env.version, lock)
            key = self.builder.key(env.lock, it)
        lock = env.lock
        python = None
        if build:
            if not self.builder.is_built(key):
                progress(f"installing {len(lock['requirements'])} packages into {what} (Python {it.version})")
            self.builder.build(key, lock, what, progress, it)
            python = self.builder.python(key)
        requirements = tuple([*lock.get("options", []), *lock["requirements"]])
        return Prepared(env.ref, key, requirements, python, cached, time.monotonic() - started, it.version,
                        choice.note)

    def for_replicas(self, ref: str, *, build: bool = True) -> ReplicaEnvironment:
        """What a replica of a deployment using `ref` runs with; the venv is built again if it is
        missing (collected, or a workspace copied to another machine)."""
        prepared = self.prepare(ref, build=build)
        return ReplicaEnvironment(prepared.key, prepared.requirements, prepared.python)

    # -- garbage collection --------------------------------------------------------------------

    def in_use(self) -> set[str]:
        """Refs of the environment versions that deployments name (desired or serving)."""
        refs = set()
        for row in ServingStore(self.db).deployments():
            for spec in (row["spec"], row.get("active_spec") or {}):
                if spec.get("environment"):
                    refs.add(spec["environment"])
        return refs

    def collect(self, *, cache: bool = False, progress: Progress = _quiet) -> dict:
        """Remove the builds that no deployment uses and no named, unarchived version keeps, and
        unfinished builds; with `cache`, empty uv's package cache too. Says what it freed."""
        used = self.in_use()
        keep: set[str] = set()
        owners: dict[str, list[str]] = {}
        for env in self.store.list(include_archived=True):
            try:
                key = self._key(env)
            except InvalidInput:   # its Python is gone under strict: it has no build to keep
                continue
            if key is None:
                continue
            owners.setdefault(key[:16], []).append(env.ref)
            if env.ref in used or (env.name != ANONYMOUS and not env.archived):
                keep.add(key[:16])
        built = self.builder.built()
        doomed = [path for name, path in sorted(built.items()) if name not in keep]
        leftovers = self.builder.leftovers()
        removed = [{"path": str(p), "environments": owners.get(p.name, []),
                    "bytes": self.builder.remove([p])} for p in doomed]
        freed = sum(r["bytes"] for r in removed) + self.builder.remove(leftovers)
        for r in removed:
            progress(f"removed {r['path']} ({', '.join(r['environments']) or 'no version'}): {r['bytes']} bytes")
        cache_freed = self.builder.clean_cache(progress) if cache else 0
        remaining = [p for p in built.values() if p.exists()]
        return {"removed": removed, "kept": len(remaining), "freed_bytes": freed + cache_freed,
                "cache_freed_bytes": cache_freed, "disk_bytes": disk_usage([*remaining, self.builder.cache])}
