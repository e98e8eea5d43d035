"""Desired serving state: endpoints and deployments rows (the only SQL for them)."""

from __future__ import annotations

import hashlib
import secrets

import orjson
import sqlalchemy as sa

from ..domain.errors import AlreadyExists, Conflict, NotFound, PreconditionFailed
from ..domain.model_types import FAST_PATH_DEFAULT
from .db import Database, utcnow
from .leases import Fence, check_fence
from .schema import deployments, endpoints

# Spec fields that change what a replica runs; the rest apply without restarting replicas.
REPLICA_FIELDS = ("model", "model_type", "model_sha256", "code", "environment_variables", "batching", "environment",
                  "placement", "fast_path")
# Fields added later count only when set to other than their default, so the hashes of deployments
# from before them still hold.
_LATER_FIELDS = {"environment": None, "placement": None, "fast_path": FAST_PATH_DEFAULT}


def replica_hash(spec: dict) -> str:
    fields = {k: spec.get(k) for k in REPLICA_FIELDS
              if k not in _LATER_FIELDS or spec.get(k) not in (None, _LATER_FIELDS[k])}
    return hashlib.sha256(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)).hexdigest()


def spec_etag(spec: dict) -> str:
    """The version of a deployment's desired spec that an update was based on: its content, so
    an update that wrote the same content is no conflict."""
    return hashlib.sha256(orjson.dumps(spec, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def new_key() -> str:
    return secrets.token_urlsafe(32)


def deployment_of_model(conn: sa.Connection, ref: str) -> tuple[str, str] | None:
    """(endpoint, deployment) of the first deployment whose desired spec names model version
    `ref`, read on the caller's connection so a model delete checks it in its own transaction."""
    for d in conn.execute(sa.select(deployments.c.endpoint, deployments.c.name, deployments.c.spec)):
        if d.spec.get("model") == ref:
            return d.endpoint, d.name
    return None


class ServingStore:
    def __init__(self, db: Database):
        self.db = db

    # -- endpoints ---------------------------------------------------------------------------

    def endpoints(self) -> list[dict]:
        with self.db.read() as conn:
            return [r._asdict() for r in conn.execute(sa.select(endpoints).order_by(endpoints.c.name))]

    def endpoint(self, name: str) -> dict:
        with self.db.read() as conn:
            row = conn.execute(sa.select(endpoints).where(endpoints.c.name == name)).first()
        if row is None:
            raise NotFound(f"endpoint {name!r} not found")
        return row._asdict()

    def create_endpoint(self, name: str, spec: dict) -> dict:
        now = utcnow()
        with self.db.write() as conn:
            if conn.execute(sa.select(endpoints.c.name).where(endpoints.c.name == name)).first():
                raise AlreadyExists(f"endpoint {name!r} already exists")
            conn.execute(endpoints.insert().values(
                name=name, spec=spec, traffic={}, mirror_traffic={}, primary_key=new_key(),
                secondary_key=new_key(), created_at=now, updated_at=now))
        return self.endpoint(name)

    def update_endpoint(self, name: str, **values) -> dict:
        with self.db.write() as conn:
            n = conn.execute(endpoints.update().where(endpoints.c.name == name)
                             .values(updated_at=utcnow(), **values)).rowcount
        if not n:
            raise NotFound(f"endpoint {name!r} not found")
        return self.endpoint(name)

    def delete_endpoint(self, name: str) -> None:
        with self.db.write() as conn:
            conn.execute(deployments.delete().where(deployments.c.endpoint == name))
            if not conn.execute(endpoints.delete().where(endpoints.c.name == name)).rowcount:
                raise NotFound(f"endpoint {name!r} not found")

    # -- deployments -------------------------------------------------------------------------

    def deployments(self, endpoint: str | None = None) -> list[dict]:
        q = sa.select(deployments).order_by(deployments.c.endpoint, deployments.c.name)
        if endpoint is not None:
            q = q.where(deployments.c.endpoint == endpoint)
        with self.db.read() as conn:
            return [r._asdict() for r in conn.execute(q)]

    def deployment(self, endpoint: str, name: str) -> dict:
        with self.db.read() as conn:
            row = conn.execute(sa.select(deployments).where(
                deployments.c.endpoint == endpoint, deployments.c.name == name)).first()
        if row is None:
            raise NotFound(f"deployment {name!r} not found on endpoint {endpoint!r}")
        return row._asdict()

    def put_deployment(self, endpoint: str, name: str, spec: dict, *, create: bool | None,
                       take_all_traffic: bool = False, if_match: str | None = None) -> tuple[dict, bool]:
        """Create or update desired state; returns (row, created). The first deployment takes 100%.
        `if_match`: the etag the change was based on; refused if the row changed since."""
        now = utcnow()
        h = replica_hash(spec)
        with self.db.write() as conn:
            ep = conn.execute(sa.select(endpoints).where(endpoints.c.name == endpoint)).first()
            if ep is None:
                raise NotFound(f"endpoint {endpoint!r} not found")
            row = conn.execute(sa.select(deployments).where(
                deployments.c.endpoint == endpoint, deployments.c.name == name)).first()
            where = (deployments.c.endpoint == endpoint) & (deployments.c.name == name)
            if if_match is not None and (row is None or spec_etag(row.spec) != if_match):
                now_at = "it was deleted" if row is None else f"its etag is now {spec_etag(row.spec)}"
                raise PreconditionFailed(f"deployment {name!r} on endpoint {endpoint!r} changed since it was read "
                                         f"(etag {if_match}; {now_at}): read it again and retry")
            if row is None:
                if create is False:
                    raise NotFound(f"deployment {name!r} not found on endpoint {endpoint!r}")
                first = conn.execute(sa.select(sa.func.count()).select_from(deployments)
                                     .where(deployments.c.endpoint == endpoint)).scalar() == 0
                conn.execute(deployments.insert().values(
                    endpoint=endpoint, name=name, spec=spec, spec_hash=h, state="Creating",
                    created_at=now, updated_at=now))
                if first or take_all_traffic:
                    conn.execute(endpoints.update().where(endpoints.c.name == endpoint)
                                 .values(traffic={name: 100}, updated_at=now))
                created = True
            else:
                if create is True:
                    raise AlreadyExists(f"deployment {name!r} already exists on endpoint {endpoint!r}; "
                                        "use update")
                # Only a change to what replicas run needs a rollout; back on the serving spec
                # (say, after a failed update), settings apply in place and the state is settled.
                values = dict(spec=spec, spec_hash=h, failed_hash=None, updated_at=now)
                if h != row.active_hash:
                    values["state"] = "Updating"
                else:  # back on (or still on) what serves: nothing to roll out, even mid-rollout
                    values.update(state="Succeeded", error=None, active_spec=spec)
                conn.execute(deployments.update().where(where).values(**values))
                if take_all_traffic:
                    conn.execute(endpoints.update().where(endpoints.c.name == endpoint)
                                 .values(traffic={name: 100}, updated_at=now))
                created = False
        return self.deployment(endpoint, name), created

    def delete_deployment(self, endpoint: str, name: str) -> None:
        with self.db.write() as conn:
            ep = conn.execute(sa.select(endpoints).where(endpoints.c.name == endpoint)).first()
            if ep is None:
                raise NotFound(f"endpoint {endpoint!r} not found")
            others = conn.execute(sa.select(sa.func.count()).select_from(deployments).where(
                deployments.c.endpoint == endpoint, deployments.c.name != name)).scalar()
            if ep.traffic.get(name, 0) > 0 and others:
                raise Conflict(f"deployment {name!r} takes {ep.traffic[name]}% of traffic on {endpoint!r}; "
                               "move its traffic to other deployments first")
            if not conn.execute(deployments.delete().where(
                    deployments.c.endpoint == endpoint, deployments.c.name == name)).rowcount:
                raise NotFound(f"deployment {name!r} not found on endpoint {endpoint!r}")
            traffic = {k: v for k, v in ep.traffic.items() if k != name}
            mirror = {k: v for k, v in ep.mirror_traffic.items() if k != name}
            conn.execute(endpoints.update().where(endpoints.c.name == endpoint)
                         .values(traffic=traffic, mirror_traffic=mirror, updated_at=utcnow()))

    def record_rollout(self, endpoint: str, name: str, spec_hash: str, *, ok: bool,
                       error: str | None = None, fence: Fence | None = None) -> None:
        """The controller's verdict on a rollout of `spec_hash`; a stale verdict changes nothing,
        and one under a lease that has ended (`fence`) is refused (LeaseLost)."""
        with self.db.write() as conn:
            check_fence(conn, fence)
            row = conn.execute(sa.select(deployments).where(
                deployments.c.endpoint == endpoint, deployments.c.name == name)).first()
            if row is None or row.spec_hash != spec_hash:
                return
            where = (deployments.c.endpoint == endpoint) & (deployments.c.name == name)
            if ok:
                conn.execute(deployments.update().where(where).values(
                    state="Succeeded", error=None, active_spec=row.spec, active_hash=spec_hash,
                    failed_hash=None, updated_at=utcnow()))
            elif row.active_hash == spec_hash:
                # Restoring what served before (after a restart) failed: say so, and keep retrying
                # with backoff rather than marking the serving spec as failed for good.
                conn.execute(deployments.update().where(where).values(
                    state="Failed", error=error, updated_at=utcnow()))
            elif row.active_spec is not None:
                # Roll the desired state back to what still serves, so the store tells the truth.
                conn.execute(deployments.update().where(where).values(
                    state="Failed", error=error, spec=row.active_spec, spec_hash=row.active_hash,
                    failed_hash=spec_hash, updated_at=utcnow()))
            else:
                conn.execute(deployments.update().where(where).values(
                    state="Failed", error=error, failed_hash=spec_hash, updated_at=utcnow()))
