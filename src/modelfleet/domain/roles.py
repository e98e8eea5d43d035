"""Who may do what: Azure's built-in role names and meanings, as Azure writes them.

A permission is an Azure action string (`Microsoft.MachineLearningServices/workspaces/
onlineEndpoints/write`). A role is Azure's definition: `actions` granted, `not_actions` taken
back, both with `*` wildcards, compared case-insensitively. A caller may do an action when one of
their roles at that scope grants it; nothing is granted by default.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from dataclasses import dataclass

ML = "Microsoft.MachineLearningServices/workspaces"
ROLE_ASSIGNMENTS = "Microsoft.Authorization/roleAssignments"
# Entra ID's users and service principals have no Azure RBAC action; modelfleet keeps its own
# principals, and managing them (or another principal's tokens) is an Owner's right, like roles.
PRINCIPALS = "Modelfleet.Identity/principals"
ACTIVITY_LOG_READ = "Microsoft.Insights/eventtypes/values/read"   # Azure's action for its activity log


def action(resource: str, verb: str) -> str:
    """`action("onlineEndpoints", "write")` -> the Azure action on a workspace's resource;
    `action("", "write")` is the workspace itself."""
    return f"{ML}/{resource}/{verb}" if resource else f"{ML}/{verb}"


@dataclass(frozen=True)
class Role:
    name: str
    description: str
    actions: tuple[str, ...]
    not_actions: tuple[str, ...] = ()

    def grants(self, wanted: str) -> bool:
        return _any_match(self.actions, wanted) and not _any_match(self.not_actions, wanted)


def _any_match(patterns: tuple[str, ...], wanted: str) -> bool:
    return any(_pattern(p).match(wanted.lower()) for p in patterns)


@functools.cache
def _pattern(pattern: str) -> re.Pattern:
    return re.compile(fnmatch.translate(pattern.lower()))


BUILT_IN_ROLES = {r.name.lower(): r for r in (
    Role("Owner", "Everything, and who may do what (role assignments, principals).", ("*",)),
    Role("Contributor", "Everything but role assignments and principals.", ("*",),
         (f"{ROLE_ASSIGNMENTS}/write", f"{ROLE_ASSIGNMENTS}/delete", f"{PRINCIPALS}/write", f"{PRINCIPALS}/delete")),
    Role("Reader", "Reads everything but secrets (endpoint keys, datastore credentials).", ("*/read",)),
    Role("AzureML Data Scientist",
         "Everything in a workspace but computes, the workspace's own settings and role assignments.",
         (f"{ML}/read", f"{ML}/*/read", f"{ML}/*/action", f"{ML}/*/delete", f"{ML}/*/write"),
         (f"{ML}/delete", f"{ML}/write", f"{ML}/computes/*/write", f"{ML}/computes/*/delete",
          f"{ML}/computes/write", f"{ML}/computes/delete", f"{ML}/computes/listKeys/action",
          f"{ML}/listKeys/action", f"{ML}/datastores/listSecrets/action")),
    Role("AzureML Compute Operator", "Create, change and delete computes; read the workspace.",
         (f"{ML}/computes/*", f"{ML}/read")),
)}


def role(name: str) -> Role:
    """A built-in role by its Azure name, in any case; an unknown name is one line listing them."""
    found = BUILT_IN_ROLES.get(name.strip().lower())
    if found is None:
        from .errors import InvalidInput
        known = ", ".join(sorted(r.name for r in BUILT_IN_ROLES.values()))
        raise InvalidInput(f"--role {name!r}: not a built-in role (one of: {known})")
    return found


def allowed(roles: list[str] | tuple[str, ...], wanted: str) -> bool:
    """Whether any of the roles (names) grants the action: deny by default."""
    return any(name.lower() in BUILT_IN_ROLES and BUILT_IN_ROLES[name.lower()].grants(wanted) for name in roles)
