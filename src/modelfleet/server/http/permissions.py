"""Which Azure action each control API route is: the one table the API authorizes by.

A route missing here is refused to everyone (deny by default), and a test walks `app.routes` to
keep the table whole. An action may name the route's path parameters (`{kind}`). The scope is the
workspace the request is for (`/workspaces/NAME`, where roles held at `/` count too) or the server
itself (`/`: users, service principals and the hosted workspaces, which every workspace shares).
"""

from __future__ import annotations

from dataclasses import dataclass

from ...domain.roles import ACTIVITY_LOG_READ, PRINCIPALS, ROLE_ASSIGNMENTS, action

WORKSPACE, SERVER = "workspace", "server"


@dataclass(frozen=True)
class Permission:
    action: str                 # the Azure action; may hold {path_parameter}
    scope: str = WORKSPACE
    role_needed: bool = True    # False: any signed-in caller (who they are, their own tokens)
    public: bool = False        # no token asked (the dashboard's redirect)

    def action_for(self, path_params: dict) -> str:
        return self.action.format(**path_params) if "{" in self.action else self.action

    @property
    def is_read(self) -> bool:
        return self.action.lower().endswith("/read")


def ws(resource: str, verb: str) -> Permission:
    return Permission(action(resource, verb))


EP, DEP = "onlineEndpoints", "onlineEndpoints/deployments"
PUBLIC = Permission("", public=True)
OWN_TOKENS = f"{PRINCIPALS}/tokens"
ROLE_DEFINITIONS_READ = "Microsoft.Authorization/roleDefinitions/read"   # the built-in roles: public knowledge

ROUTES: dict[tuple[str, str], Permission] = {
    ("GET", "/api/health"): ws("", "read"),
    ("GET", "/api/server/settings"): ws("", "read"),
    ("PATCH", "/api/server/settings"): ws("", "write"),
    # endpoints and deployments
    ("GET", "/api/endpoints"): ws(EP, "read"),
    ("GET", "/api/endpoints/{name}"): ws(EP, "read"),
    ("PUT", "/api/endpoints/{name}"): ws(EP, "write"),
    ("PUT", "/api/endpoints/{name}/traffic"): ws(EP, "write"),
    ("DELETE", "/api/endpoints/{name}"): ws(EP, "delete"),
    ("GET", "/api/endpoints/{name}/keys"): ws(EP, "listKeys/action"),
    ("POST", "/api/endpoints/{name}/regenerate-keys"): ws(EP, "regenerateKeys/action"),
    ("GET", "/api/deployments"): ws(DEP, "read"),
    ("GET", "/api/endpoints/{endpoint}/deployments"): ws(DEP, "read"),
    ("GET", "/api/endpoints/{endpoint}/deployments/{name}"): ws(DEP, "read"),
    ("PUT", "/api/endpoints/{endpoint}/deployments/{name}"): ws(DEP, "write"),
    ("DELETE", "/api/endpoints/{endpoint}/deployments/{name}"): ws(DEP, "delete"),
    ("GET", "/api/endpoints/{endpoint}/deployments/{name}/logs"): ws(DEP, "getLogs/action"),
    # models and uploaded snapshots (kind: models or code)
    ("GET", "/api/artifacts/{kind}/{sha256}"): ws("{kind}", "read"),
    ("PUT", "/api/artifacts/{kind}/{sha256}"): ws("{kind}", "write"),
    ("POST", "/api/artifacts/{kind}"): ws("{kind}", "write"),   # a snapshot read from a datastore path
    ("GET", "/api/models"): ws("models", "read"),
    ("POST", "/api/models/{name}/versions"): ws("models", "write"),
    ("GET", "/api/models/{name}/versions/{version}"): ws("models", "read"),
    ("PATCH", "/api/models/{name}/versions/{version}"): ws("models", "write"),
    ("DELETE", "/api/models/{name}/versions/{version}"): ws("models", "delete"),
    ("PUT", "/api/models/{name}/versions/{version}/archived"): ws("models", "write"),
    ("POST", "/api/models/{name}/versions/{version}/verify"): ws("models", "read"),
    ("GET", "/api/models/{name}/versions/{version}/files/{path}"): ws("models", "read"),
    ("GET", "/api/models/{name}/labels/{label}"): ws("models", "read"),
    ("PUT", "/api/models/{name}/labels/{label}"): ws("models", "write"),
    # environments
    ("GET", "/api/environments"): ws("environments", "read"),
    ("POST", "/api/environments"): ws("environments", "write"),
    ("POST", "/api/environments/of-model"): ws("environments", "write"),
    ("POST", "/api/environments/image"): ws("environments", "read"),
    ("GET", "/api/environments/{ref}"): ws("environments", "read"),
    ("PUT", "/api/environments/{name}/versions/{version}/archived"): ws("environments", "write"),
    ("POST", "/api/environments/build"): ws("environments", "write"),
    ("POST", "/api/environments/gc"): ws("environments", "delete"),
    # computes
    ("GET", "/api/computes"): ws("computes", "read"),
    ("GET", "/api/computes/{name}"): ws("computes", "read"),
    ("POST", "/api/computes"): ws("computes", "write"),
    ("POST", "/api/computes/attach"): ws("computes", "write"),
    ("POST", "/api/computes/{name}/detach"): ws("computes", "delete"),
    ("DELETE", "/api/computes/{name}"): ws("computes", "delete"),
    # datastores: their secrets only by listSecrets, which a Data Scientist lacks
    ("GET", "/api/datastores"): ws("datastores", "read"),
    ("GET", "/api/datastores/{name}"): ws("datastores", "read"),
    ("POST", "/api/datastores"): ws("datastores", "write"),
    ("PUT", "/api/datastores/{name}"): ws("datastores", "write"),
    ("PUT", "/api/datastores/{name}/default"): ws("datastores", "write"),
    ("DELETE", "/api/datastores/{name}"): ws("datastores", "delete"),
    ("POST", "/api/datastores/{name}/listSecrets"): ws("datastores", "listSecrets/action"),
    # data assets and monitoring
    ("GET", "/api/data"): ws("data", "read"),
    ("GET", "/api/data/{name}"): ws("data", "read"),
    ("POST", "/api/data/{name}/versions"): ws("data", "write"),
    ("GET", "/api/data/{name}/versions/{version}"): ws("data", "read"),
    ("GET", "/api/data/{name}/versions/{version}/columns"): ws("data", "read"),
    ("GET", "/api/schedules"): ws("schedules", "read"),
    ("GET", "/api/schedules/{name}"): ws("schedules", "read"),
    ("PUT", "/api/schedules/{name}"): ws("schedules", "write"),
    ("PUT", "/api/schedules/{name}/enabled"): ws("schedules", "write"),
    ("DELETE", "/api/schedules/{name}"): ws("schedules", "delete"),
    ("GET", "/api/schedules/{name}/runs"): ws("schedules", "read"),
    ("POST", "/api/schedules/{name}/run"): ws("schedules", "run/action"),
    ("GET", "/api/monitoring"): ws("schedules", "read"),
    # the servers sharing this workspace's database
    ("GET", "/api/servers"): ws("", "read"),
    # watching the fleet
    ("GET", "/metrics"): ws("", "read"),   # open on loopback unless --metrics-auth token
    ("GET", "/api/stats"): ws(EP, "read"),
    ("GET", "/api/events"): ws("", "read"),
    ("GET", "/api/requests"): ws(EP, "read"),
    ("GET", "/dashboard"): PUBLIC,          # a redirect to the static files; their data needs a token
    ("GET", "/docs"): PUBLIC,               # Swagger UI: the API's shape, no secret
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,       # the API's shape; a hosted workspace's without its endpoints
    # who may do what
    ("GET", "/api/identity"): Permission(f"{PRINCIPALS}/read", SERVER, role_needed=False),
    ("GET", "/api/principals"): Permission(f"{PRINCIPALS}/read", SERVER),
    ("POST", "/api/principals"): Permission(f"{PRINCIPALS}/write", SERVER),
    ("GET", "/api/principals/{name}"): Permission(f"{PRINCIPALS}/read", SERVER),
    ("DELETE", "/api/principals/{name}"): Permission(f"{PRINCIPALS}/delete", SERVER),
    # a caller's own tokens; another principal's need PRINCIPALS/read|write at / (checked by the route)
    ("GET", "/api/tokens"): Permission(f"{OWN_TOKENS}/read", SERVER, role_needed=False),
    ("POST", "/api/tokens"): Permission(f"{OWN_TOKENS}/write", SERVER, role_needed=False),
    ("DELETE", "/api/tokens/{name}"): Permission(f"{OWN_TOKENS}/delete", SERVER, role_needed=False),
    ("GET", "/api/role-definitions"): Permission(ROLE_DEFINITIONS_READ, SERVER, role_needed=False),
    # at the workspace here; an assignment at / needs the right at / as well (checked by the route)
    ("GET", "/api/role-assignments"): Permission(f"{ROLE_ASSIGNMENTS}/read"),
    ("POST", "/api/role-assignments"): Permission(f"{ROLE_ASSIGNMENTS}/write"),
    ("DELETE", "/api/role-assignments"): Permission(f"{ROLE_ASSIGNMENTS}/delete"),
    ("GET", "/api/activity-log"): Permission(ACTIVITY_LOG_READ),
    # the workspaces a server hosts: listed and shown to those with a role on each (checked by the
    # route), made at /, deleted by those allowed at the workspace (checked by the route)
    ("GET", "/api/workspaces"): Permission(action("", "read"), SERVER, role_needed=False),
    ("PUT", "/api/workspaces/{name}"): Permission(action("", "write"), SERVER),
    ("GET", "/api/workspaces/{name}"): Permission(action("", "read"), SERVER, role_needed=False),
    ("DELETE", "/api/workspaces/{name}"): Permission(action("", "delete"), SERVER, role_needed=False),
}


def permission(method: str, path_format: str) -> Permission | None:
    """The route's permission; None: not declared, so refused."""
    return ROUTES.get((method, path_format))
