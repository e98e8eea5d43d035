"""The Python API. The CLI is a thin layer over it.

    from modelfleet import Fleet
    fleet = Fleet()                                   # the current workspace
    fleet.models.register("model_a", "./models/model_a", version="v1", description="segment 1")
    fleet.online_endpoints.create("model-a")
    fleet.online_deployments.create("blue", endpoint="model-a", model="model_a:v1")
    fleet.online_endpoints.invoke("model-a", {"data": [[1, 2, 3, 4]]})
    plan = fleet.plan("fleet.yaml")                   # a whole fleet file: what would change
    outcomes = fleet.apply(plan)                      # ... and make it so

Everything goes to the server over HTTP: the workspace's own server, started in the background
on first need; a remote one (`FLEET_SERVER` and `FLEET_TOKEN`, `server=` and `token=`, or the
server `fleet login` made current: client/accounts.py; `workspace=` then names one the server
hosts, whose requests go under /workspaces/NAME), its certificate checked against the CA
bundle given or REQUESTS_CA_BUNDLE / SSL_CERT_FILE (tls.py); or,
in tests, any httpx transport (`transport=`: tests/inprocess.py runs the real API app through
httpx.ASGITransport, no process and no port). The client opens no file of the workspace but the
launcher's run/server.json and saved settings.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..domain.errors import InvalidInput
from ..schema.workspace import Workspace, Workspaces
from . import launcher, tls
from .accounts import Accounts
from .computes import ComputeOperations
from .connection import Connection, Target
from .data import DataOperations
from .datastores import DatastoreOperations
from .deployments import DeploymentOperations
from .endpoints import EndpointOperations
from .environments import EnvironmentOperations
from .identities import ActivityLogOperations, RoleAssignmentOperations, TokenOperations, UserOperations
from .models import ModelOperations
from .schedules import ScheduleOperations
from .server import ServerOperations
from .workspaces import WorkspaceOperations

if TYPE_CHECKING:
    import httpx

    from ..fleetfile.applier import Outcome, Progress
    from ..fleetfile.desired import DesiredFleet
    from ..fleetfile.planner import Plan

IN_PROCESS_URL = "http://modelfleet"   # the base URL when only a transport is given


def _notice_nothing(_msg: str) -> None:
    pass


def load_fleet(path: str | Path, notice: Callable[[str], None] | None = None) -> DesiredFleet:
    """A fleet YAML, multi-document YAML or directory of documents, validated in full before any
    workspace or server is touched (one SpecError lists every problem). Fields that have no
    meaning here (Azure-only) are reported to `notice`."""
    from ..fleetfile.desired import load
    desired = load(path)
    for n in desired.notices:
        (notice or _notice_nothing)(f"notice: {n}")
    return desired


class Fleet:
    def __init__(self, workspace: str | None = None, *, home: str | Path | None = None,
                 notice: Callable[[str], None] | None = None, server: str | None = None, token: str | None = None,
                 ca_bundle: str | Path | None = None, transport: httpx.BaseTransport | None = None):
        self.notice = notice or _notice_nothing
        server = server or os.environ.get("FLEET_SERVER") or None
        self.workspace: Workspace | None = None   # None: the server is elsewhere (its name: workspace_name)
        self.workspace_requested: str | None = None
        account = None if server or transport else Accounts(Path(home) if home else None).current()
        if account is not None:   # fleet login's current server; FLEET_TOKEN may replace its token
            server, ca_bundle = account.server, ca_bundle or account.ca_bundle
            workspace = workspace or account.workspace or None   # `fleet workspace set` picks it
            token = token or os.environ.get("FLEET_TOKEN") or account.token
        if server is None and transport is None:
            self.workspace = Workspaces(Path(home) if home else None).get(workspace)
            self.connection = Connection(self._local_server)
        else:
            token = token or os.environ.get("FLEET_TOKEN")
            if not token:
                raise InvalidInput("FLEET_TOKEN: a token is needed with FLEET_SERVER (`fleet token create`, or "
                                   "`fleet login --server URL` instead)")
            url = (server or IN_PROCESS_URL).rstrip("/")
            verify = tls.trust(ca_bundle) if url.startswith("https:") and transport is None else True
            target = Target(url, token, verify, ca_bundle=str(ca_bundle) if ca_bundle else None)
            self.workspace_requested = workspace   # None: the server's primary workspace
            self.connection = Connection(lambda: target, transport, workspace)
        self.models = ModelOperations(self)
        self.online_endpoints = EndpointOperations(self)
        self.online_deployments = DeploymentOperations(self)
        self.computes = ComputeOperations(self)
        self.datastores = DatastoreOperations(self)
        self.environments = EnvironmentOperations(self)
        self.server = ServerOperations(self)
        self.data = DataOperations(self)              # data assets (docs/monitoring.md)
        self.schedules = ScheduleOperations(self)     # model monitors (docs/monitoring.md)
        self.users = UserOperations(self)
        self.tokens = TokenOperations(self)
        self.role_assignments = RoleAssignmentOperations(self)
        self.activity_log = ActivityLogOperations(self)
        self.workspaces = WorkspaceOperations(self)   # those a server hosts (a remote server's)

    def _local_server(self) -> Target:
        """The workspace's server, started if it is not running (reads and writes alike)."""
        info = launcher.read_info(self.workspace)
        if info is None:
            info, started = launcher.start(self.workspace)
            if started:
                self.notice(f"started the server of workspace {self.workspace.name!r} at {info.url} (pid {info.pid})")
        return Target(info.url, info.token, launcher.verify(info), info.pid)

    @cached_property
    def workspace_name(self) -> str:
        if self.workspace is not None:
            return self.workspace.name
        return self.request("GET", "/api/health")["workspace"]

    def request(self, method: str, path: str, *, json: Any = None, params: dict | None = None,
                timeout: float | None = None, headers: dict | None = None, content: Any = None) -> Any:
        return self.connection.request(method, path, json=json, params=params, timeout=timeout, headers=headers,
                                       content=content)

    def close(self) -> None:
        self.connection.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- fleet files -------------------------------------------------------------------------

    def plan(self, fleet: str | Path | DesiredFleet, *, prune: bool = False) -> Plan:
        """The changes that make the workspace match `fleet`: a path (its notices go to this
        Fleet's `notice`) or what `load_fleet` returned. `prune` also deletes endpoints and
        deployments the fleet no longer names."""
        from ..fleetfile.desired import DesiredFleet
        from ..fleetfile.planner import make_plan, read_current
        desired = fleet if isinstance(fleet, DesiredFleet) else load_fleet(fleet, self.notice)
        return make_plan(desired, read_current(self), prune=prune)

    def apply(self, fleet: str | Path | DesiredFleet | Plan, *, prune: bool = False, timeout: float = 600.0,
              progress: Progress | None = None) -> list[Outcome]:
        """Carry out `plan(fleet)` (or a Plan already made), waiting up to `timeout` seconds for
        each deployment; `progress(change, state, text)` hears of each step. One failure does not
        stop the others: every change has an Outcome, check `ok`."""
        from ..fleetfile.applier import apply_plan
        from ..fleetfile.planner import Plan
        if isinstance(fleet, Plan):
            if prune:
                raise InvalidInput("prune is decided when planning: pass it to plan()")
            plan = fleet
        else:
            plan = self.plan(fleet, prune=prune)
        return apply_plan(self, plan, timeout=timeout, progress=progress)
