"""The model registry: register, resolve, label, archive and delete model versions.

Versions are immutable. Files go into the content-addressed artifact store first; the version
row is written after, in one transaction, so a crash leaves no half-registered version.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field, fields
from pathlib import Path

import sqlalchemy as sa

from .errors import AlreadyExists, Conflict, InvalidInput, NotFound
from .model_types import MODEL_TYPES
from .names import ModelRef, check_name, check_version
from .store import ArtifactStore, Database, utcnow
from .store.schema import deployments, model_labels, models

_INT = re.compile(r"^[0-9]+$")


@dataclass
class Model:
    name: str
    version: str
    type: str
    description: str
    sha256: str
    size: int
    files: list[dict]
    tags: dict[str, str]
    labels: list[str] = field(default_factory=list)
    archived: bool = False
    created_at: str = ""

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def to_dict(self) -> dict:
        # Shallow on purpose: dataclasses.asdict deep-copies every file list (10x slower at 10k rows).
        return {f.name: getattr(self, f.name) for f in fields(self)}


def detect_type(files: list[dict]) -> str:
    names = [f["path"].rsplit("/", 1)[-1].lower() for f in files]
    if "mlmodel" in names:
        return "mlflow"
    if any(n.endswith(".onnx") for n in names):
        return "onnx"
    if any(n.endswith((".joblib", ".pkl", ".pickle")) for n in names):
        return "sklearn"
    return "custom"


def _check_tags(tags: dict | None) -> dict[str, str]:
    out = {}
    for k, v in (tags or {}).items():
        if not isinstance(k, str) or not k or len(k) > 128:
            raise InvalidInput(f"invalid tag key {k!r}: 1-128 characters")
        out[k] = "" if v is None else str(v)
    return out


class Registry:
    def __init__(self, db: Database, artifacts: ArtifactStore):
        self.db = db
        self.artifacts = artifacts

    # -- reading -------------------------------------------------------------------------------

    def _labels(self, conn, name: str, version: str | None = None) -> dict[str, list[str]]:
        q = sa.select(model_labels).where(model_labels.c.name == name)
        if version is not None:
            q = q.where(model_labels.c.version == version)
        out: dict[str, list[str]] = {}
        for r in conn.execute(q):
            out.setdefault(r.version, []).append(r.label)
        return out

    @staticmethod
    def _entity(row, labels: list[str]) -> Model:
        return Model(name=row.name, version=row.version, type=row.type, description=row.description,
                     sha256=row.sha256, size=row.size, files=row.files, tags=row.tags,
                     labels=sorted(labels), archived=bool(row.archived), created_at=row.created_at)

    def _latest_row(self, conn, name: str):
        return conn.execute(
            sa.select(models).where(models.c.name == name, models.c.archived == sa.false())
            .order_by(models.c.seq.desc()).limit(1)).first()

    def get(self, ref: str | ModelRef) -> Model:
        """Resolve `name:version`, `name@label` or bare `name` (latest) to one version."""
        r = ref if isinstance(ref, ModelRef) else ModelRef.parse(ref)
        with self.db.read() as conn:
            if r.version is not None:
                row = conn.execute(sa.select(models).where(
                    models.c.name == r.name, models.c.version == r.version)).first()
            elif r.label in (None, "latest"):
                row = self._latest_row(conn, r.name)
            else:
                row = conn.execute(
                    sa.select(models).join(model_labels, sa.and_(
                        model_labels.c.name == models.c.name, model_labels.c.version == models.c.version))
                    .where(model_labels.c.name == r.name, model_labels.c.label == r.label)).first()
            if row is None:
                raise NotFound(f"model {r} not found")
            return self._entity(row, self._labels(conn, row.name, row.version).get(row.version, []))

    def list(self, name: str | None = None, include_archived: bool = False) -> list[Model]:
        with self.db.read() as conn:
            q = sa.select(models)
            lq = sa.select(model_labels)
            if name:
                q = q.where(models.c.name == name)
                lq = lq.where(model_labels.c.name == name)
            if not include_archived:
                q = q.where(models.c.archived == sa.false())
            q = q.order_by(models.c.name, models.c.seq)
            labels: dict[tuple, list[str]] = {}
            for r in conn.execute(lq):
                labels.setdefault((r.name, r.version), []).append(r.label)
            return [self._entity(r, labels.get((r.name, r.version), [])) for r in conn.execute(q)]

    def path_of(self, model: Model, verify: bool = True) -> Path:
        if verify:
            return self.artifacts.verify("models", model.sha256, model.files)
        return self.artifacts.snapshot_dir("models", model.sha256)

    # -- writing -------------------------------------------------------------------------------

    def register(self, name: str, path: str | Path, version: str | None = None, *,
                 description: str = "", tags: dict | None = None, type: str | None = None,
                 exist_ok: bool = False, reuse_same_content: bool = False) -> Model:
        """Register files as a new version. `reuse_same_content` (with no version given) returns
        the newest existing version holding identical files instead of adding one."""
        check_name(name, "model name")
        if version is not None:
            version = check_version(version)
        if type is not None and type not in MODEL_TYPES:
            raise InvalidInput(f"invalid model type {type!r}: use one of {', '.join(MODEL_TYPES)}")
        tags = _check_tags(tags)
        snap = self.artifacts.add("models", path)
        mtype = type or detect_type(snap.files)
        with self.db.write() as conn:
            if version is None and reuse_same_content:
                row = conn.execute(sa.select(models).where(
                    models.c.name == name, models.c.sha256 == snap.sha256).order_by(models.c.seq.desc())).first()
                if row is not None:
                    return self._entity(row, self._labels(conn, name, row.version).get(row.version, []))
            if version is None:
                existing = conn.execute(sa.select(models.c.version).where(models.c.name == name)).scalars()
                version = str(max((int(v) for v in existing if _INT.match(v)), default=0) + 1)
            else:
                row = conn.execute(sa.select(models).where(
                    models.c.name == name, models.c.version == version)).first()
                if row is not None:
                    if exist_ok and row.sha256 == snap.sha256:
                        return self._entity(row, self._labels(conn, name, version).get(version, []))
                    why = "with different content" if row.sha256 != snap.sha256 else ""
                    raise AlreadyExists(f"model {name}:{version} already exists {why}".strip()
                                        + "; versions are immutable, register a new version")
            seq = (conn.execute(sa.select(sa.func.max(models.c.seq))).scalar() or 0) + 1
            values = dict(name=name, version=version, seq=seq, description=description or "",
                          type=mtype, sha256=snap.sha256, size=snap.size, files=snap.files,
                          tags=tags, archived=False, created_at=utcnow())
            conn.execute(models.insert().values(**values))
        return Model(**{k: v for k, v in values.items() if k != "seq"})

    def _require(self, conn, name: str, version: str):
        row = conn.execute(sa.select(models).where(models.c.name == name, models.c.version == version)).first()
        if row is None:
            raise NotFound(f"model {name}:{version} not found")
        return row

    def update(self, name: str, version: str, *, description: str | None = None,
               tags: dict | None = None, remove_tags: list[str] | None = None) -> Model:
        with self.db.write() as conn:
            row = self._require(conn, name, version)
            new_tags = dict(row.tags)
            new_tags.update(_check_tags(tags))
            for k in remove_tags or []:
                new_tags.pop(k, None)
            values = {"tags": new_tags}
            if description is not None:
                values["description"] = description
            conn.execute(models.update().where(models.c.name == name, models.c.version == version).values(**values))
        return self.get(ModelRef(name, version=version))

    def set_archived(self, name: str, version: str, archived: bool) -> Model:
        with self.db.write() as conn:
            self._require(conn, name, version)
            conn.execute(models.update().where(models.c.name == name, models.c.version == version)
                         .values(archived=archived))
        return self.get(ModelRef(name, version=version))

    def label(self, name: str, version: str, label: str) -> Model:
        check_name(label, "label")
        if label == "latest":
            raise InvalidInput("label 'latest' is built in and always means the newest version")
        with self.db.write() as conn:
            self._require(conn, name, version)
            conn.execute(model_labels.delete().where(model_labels.c.name == name, model_labels.c.label == label))
            conn.execute(model_labels.insert().values(name=name, label=label, version=version))
        return self.get(ModelRef(name, version=version))

    def unlabel(self, name: str, label: str) -> None:
        with self.db.write() as conn:
            n = conn.execute(model_labels.delete().where(
                model_labels.c.name == name, model_labels.c.label == label)).rowcount
        if not n:
            raise NotFound(f"label {name}@{label} not found")

    def delete(self, name: str, version: str) -> None:
        with self.db.write() as conn:
            row = self._require(conn, name, version)
            for d in conn.execute(sa.select(deployments.c.endpoint, deployments.c.name, deployments.c.spec)):
                if d.spec.get("model") == f"{name}:{version}":
                    raise Conflict(f"model {name}:{version} is deployed by {d.endpoint}/{d.name}; "
                                   "delete or update that deployment first")
            conn.execute(models.delete().where(models.c.name == name, models.c.version == version))
            still_used = conn.execute(sa.select(models.c.name).where(models.c.sha256 == row.sha256).limit(1)).first()
        if not still_used:
            shutil.rmtree(self.artifacts.snapshot_dir("models", row.sha256), ignore_errors=True)

    def download(self, ref: str, dest: str | Path) -> Path:
        model = self.get(ref)
        src = self.path_of(model)
        out = Path(dest).expanduser() / model.name
        out.mkdir(parents=True, exist_ok=True)
        for f in model.files:
            target = out / f["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / f["path"], target)
        return out
