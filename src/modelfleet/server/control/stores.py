"""The stores the server works with, made once per workspace and handed to whoever needs them
(the controller, the control API): nothing builds its own."""

from __future__ import annotations

from dataclasses import dataclass

from ...assets.environments import Environments
from ...assets.models import Registry
from ...envbuild.interpreters import Policy
from ...schema import server_settings
from ...schema.workspace import Workspace
from ...store import ArtifactStore, Database
from ...store.computes import ComputeStore
from ...store.replicas import ReplicaStore
from ...store.serving import ServingStore


@dataclass(frozen=True)
class Stores:
    db: Database
    serving: ServingStore        # endpoints and deployments: the desired state
    computes: ComputeStore
    artifacts: ArtifactStore     # model and code snapshots
    registry: Registry           # model versions
    environments: Environments   # environment versions and their builds
    replicas: ReplicaStore       # serving replicas every server can reach (Ray actors)

    @classmethod
    def of_workspace(cls, ws: Workspace, db: Database) -> Stores:
        artifacts = ArtifactStore(ws.artifacts)
        return cls(db, ServingStore(db), ComputeStore(db), artifacts, Registry(db, artifacts),
                   Environments.of_workspace(ws, db, Policy.of_settings(server_settings.load(ws))), ReplicaStore(db))
