"""The stores the server works with, made once per workspace and handed to whoever needs them
(the controller, the control API): nothing builds its own."""

from __future__ import annotations

from dataclasses import dataclass

from ...assets.datastores import Datastores
from ...assets.environments import Environments
from ...assets.models import Registry
from ...envbuild.interpreters import Policy
from ...schema import server_settings
from ...schema.workspace import Workspace
from ...store import ArtifactStore, Database
from ...datastores.secrets import SecretBox
from ...store.activity import ActivityStore
from ...store.computes import ComputeStore
from ...store.datastores import DatastoreStore
from ...store.identities import IdentityStore
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
    datastores: Datastores       # where the workspace's bytes live besides its own folder
    identities: IdentityStore    # users, service principals, tokens, role assignments
    activity: ActivityStore      # who changed what

    @classmethod
    def of_workspace(cls, ws: Workspace, db: Database, server: Stores | None = None,
                     settings: server_settings.ServerSettings | None = None) -> Stores:
        """A workspace's stores; a workspace hosted beside the primary (`server`: the primary's
        stores) shares its identities and activity log, and its server's `settings`."""
        artifacts = ArtifactStore(ws.artifacts)
        datastores = Datastores(DatastoreStore(db, SecretBox(ws.datastore_key)), artifacts)
        policy = Policy.of_settings(settings or server_settings.load(ws))
        return cls(db, ServingStore(db), ComputeStore(db), artifacts, Registry(db, artifacts, datastores),
                   Environments.of_workspace(ws, db, policy), ReplicaStore(db), datastores,
                   server.identities if server else IdentityStore(db), server.activity if server else ActivityStore(db))
