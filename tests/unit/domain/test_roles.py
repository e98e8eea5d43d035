"""Azure's built-in roles as permissions: each role's meaning, wildcards, deny by default."""

import pytest

from modelfleet.domain.errors import InvalidInput
from modelfleet.domain.roles import PRINCIPALS, ROLE_ASSIGNMENTS, action, allowed, role

READS = [action(r, "read") for r in ("models", "environments", "onlineEndpoints", "onlineEndpoints/deployments",
                                     "computes", "datastores", "")]
WORK = [action("models", "write"), action("models", "delete"), action("environments", "write"),
        action("onlineEndpoints", "write"), action("onlineEndpoints/deployments", "write"),
        action("onlineEndpoints", "delete"), action("onlineEndpoints", "score/action")]
KEYS = action("onlineEndpoints", "listKeys/action")
SECRETS = action("datastores", "listSecrets/action")
COMPUTE = [action("computes", "write"), action("computes", "delete")]
SETTINGS = action("", "write")
ASSIGN = f"{ROLE_ASSIGNMENTS}/write"
PRINCIPAL = f"{PRINCIPALS}/write"   # making users, or tokens in another's name: an Owner's, like ASSIGN


@pytest.mark.parametrize("name, may, may_not", [
    ("Reader", READS, WORK + [KEYS, SECRETS, SETTINGS, ASSIGN, PRINCIPAL] + COMPUTE),
    ("AzureML Data Scientist", READS + WORK + [KEYS], COMPUTE + [SECRETS, SETTINGS, ASSIGN, PRINCIPAL]),
    ("AzureML Compute Operator", COMPUTE + [action("computes", "read"), action("", "read")],
     WORK + [KEYS, SECRETS, SETTINGS, ASSIGN, action("models", "read")]),
    ("Contributor", READS + WORK + COMPUTE + [KEYS, SECRETS, SETTINGS],
     [ASSIGN, f"{ROLE_ASSIGNMENTS}/delete", PRINCIPAL, f"{PRINCIPALS}/delete"]),
    ("Owner", READS + WORK + COMPUTE + [KEYS, SECRETS, SETTINGS, ASSIGN, PRINCIPAL], []),
])
def test_each_built_in_role_means_what_azure_says(name, may, may_not):
    assert [a for a in may if not allowed([name], a)] == []
    assert [a for a in may_not if allowed([name], a)] == []


def test_nothing_is_allowed_without_a_role_and_unknown_roles_grant_nothing():
    assert not allowed([], READS[0])
    assert not allowed(["Superuser"], READS[0])


def test_roles_add_up_and_names_and_actions_compare_in_any_case():
    assert allowed(["reader", "azureml compute operator"], action("computes", "write"))
    assert allowed(["READER"], action("models", "read").upper())


def test_an_unknown_role_name_is_one_line_listing_the_built_in_ones():
    with pytest.raises(InvalidInput, match=r"^--role 'Admin': not a built-in role \(one of: AzureML Compute "
                                           r"Operator, AzureML Data Scientist, Contributor, Owner, Reader\)$"):
        role("Admin")
