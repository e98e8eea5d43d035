"""Model versions and labels: the only SQL for them. Rows become `Model` entities here, at the edge.

Each method is one transaction. Writers hold the write lock from their first statement
(`Database.write`), so read-then-write steps (the next version number, "is it deployed?") are
serialized across processes.
"""

from __future__ import annotations

import re
import sqlalchemy as sa

from ..domain.errors import AlreadyExists, Conflict, NotFound
from ..schema.records import Model
from .db import Database, utcnow
from .schema import model_labels, models
from .serving import deployment_of_model

_INT = re.compile(r"^[0-9]+$")


def _entity(row, labels: list[str]) -> Model:
    return Model(name=row.name, version=row.version, type=row.type, description=row.description,
                 sha256=row.sha256, size=row.size, files=row.files, tags=row.tags,
                 labels=sorted(labels), archived=bool(row.archived), created_at=row.created_at)


def _labels(conn, name: str, version: str | None = None) -> dict[str, list[str]]:
    q = sa.select(model_labels).where(model_labels.c.name == name)
    if version is not None:
        q = q.where(model_labels.c.version == version)
    out: dict[str, list[str]] = {}
    for r in conn.execute(q):
        out.setdefault(r.version, []).append(r.label)
    return out


def _with_labels(conn, row) -> Model | None:
    if row is None:
        return None
    return _entity(row, _labels(conn, row.name, row.version).get(row.version, []))


def _row(conn, name: str, version: str):
    return conn.execute(sa.select(models).where(models.c.name == name, models.c.version == version)).first()


def _require(conn, name: str, version: str):
    row = _row(conn, name, version)
    if row is None:
        raise NotFound(f"model {name}:{version} not found")
    return row


class ModelStore:
    def __init__(self, db: Database):
        self.db = db

    # -- reading -------------------------------------------------------------------------------

    def version(self, name: str, version: str) -> Model | None:
        with self.db.read() as conn:
            return _with_labels(conn, _row(conn, name, version))

    def latest(self, name: str) -> Model | None:
        """The newest registered version that is not archived."""
        with self.db.read() as conn:
            return _with_labels(conn, conn.execute(
                sa.select(models).where(models.c.name == name, models.c.archived == sa.false())
                .order_by(models.c.seq.desc()).limit(1)).first())

    def labelled(self, name: str, label: str) -> Model | None:
        with self.db.read() as conn:
            return _with_labels(conn, conn.execute(
                sa.select(models).join(model_labels, sa.and_(
                    model_labels.c.name == models.c.name, model_labels.c.version == models.c.version))
                .where(model_labels.c.name == name, model_labels.c.label == label)).first())

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
            return [_entity(r, labels.get((r.name, r.version), [])) for r in conn.execute(q)]

    # -- writing -------------------------------------------------------------------------------

    def add(self, name: str, version: str | None, *, type: str, sha256: str, size: int, files: list[dict],
            description: str, tags: dict[str, str], exist_ok: bool = False,
            reuse_same_content: bool = False) -> Model:
        """Insert a version (the next number when `version` is None). An existing version with the
        same content is returned when `exist_ok`; with no version and `reuse_same_content`, the
        newest version holding identical files is returned instead of adding one."""
        with self.db.write() as conn:
            if version is None and reuse_same_content:
                row = conn.execute(sa.select(models).where(
                    models.c.name == name, models.c.sha256 == sha256).order_by(models.c.seq.desc())).first()
                if row is not None:
                    return _with_labels(conn, row)
            if version is None:
                existing = conn.execute(sa.select(models.c.version).where(models.c.name == name)).scalars()
                version = str(max((int(v) for v in existing if _INT.match(v)), default=0) + 1)
            else:
                row = _row(conn, name, version)
                if row is not None:
                    if exist_ok and row.sha256 == sha256:
                        return _with_labels(conn, row)
                    why = "with different content" if row.sha256 != sha256 else ""
                    raise AlreadyExists(f"model {name}:{version} already exists {why}".strip()
                                        + "; versions are immutable, register a new version")
            seq = (conn.execute(sa.select(sa.func.max(models.c.seq))).scalar() or 0) + 1
            values = dict(name=name, version=version, seq=seq, description=description or "",
                          type=type, sha256=sha256, size=size, files=files,
                          tags=tags, archived=False, created_at=utcnow())
            conn.execute(models.insert().values(**values))
        return Model(**{k: v for k, v in values.items() if k != "seq"})

    def update(self, name: str, version: str, *, description: str | None = None,
               tags: dict[str, str] | None = None, remove_tags: list[str] | None = None) -> None:
        """Merge `tags` into the version's tags and drop `remove_tags`; set the description if given."""
        with self.db.write() as conn:
            row = _require(conn, name, version)
            new_tags = dict(row.tags)
            new_tags.update(tags or {})
            for k in remove_tags or []:
                new_tags.pop(k, None)
            values = {"tags": new_tags}
            if description is not None:
                values["description"] = description
            conn.execute(models.update().where(models.c.name == name, models.c.version == version).values(**values))

    def set_archived(self, name: str, version: str, archived: bool) -> None:
        with self.db.write() as conn:
            _require(conn, name, version)
            conn.execute(models.update().where(models.c.name == name, models.c.version == version)
                         .values(archived=archived))

    def set_label(self, name: str, version: str, label: str) -> None:
        """Point `name@label` at `version` (moving it from whichever version held it)."""
        with self.db.write() as conn:
            _require(conn, name, version)
            conn.execute(model_labels.delete().where(model_labels.c.name == name, model_labels.c.label == label))
            conn.execute(model_labels.insert().values(name=name, label=label, version=version))

    def remove_label(self, name: str, label: str) -> bool:
        """False when there was no such label."""
        with self.db.write() as conn:
            return bool(conn.execute(model_labels.delete().where(
                model_labels.c.name == name, model_labels.c.label == label)).rowcount)

    def delete(self, name: str, version: str) -> str | None:
        """Delete a version no deployment names; returns its content's sha256 when no other
        version holds the same files (the caller may then remove the snapshot), else None."""
        with self.db.write() as conn:
            row = _require(conn, name, version)
            deployed = deployment_of_model(conn, f"{name}:{version}")
            if deployed is not None:
                raise Conflict(f"model {name}:{version} is deployed by {deployed[0]}/{deployed[1]}; "
                               "delete or update that deployment first")
            conn.execute(models.delete().where(models.c.name == name, models.c.version == version))
            still_used = conn.execute(sa.select(models.c.name).where(models.c.sha256 == row.sha256).limit(1)).first()
        return None if still_used else row.sha256
