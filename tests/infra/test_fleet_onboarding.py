"""Onboarding independent of fleet size (issue 13): in discovery mode the template deploys the same resources
for 1 and for 5,000 tagged accounts — the accounts are tags, not parameters; the custom role is assigned once
per subscription or resource group in scope — and the explicit list stays the small-setup path."""

from __future__ import annotations

from typing import Any

from tests.infra import bicep
from tests.infra.bicep import MAIN

ARM_RESOURCES_PER_DEPLOYMENT = 800
# consumerResourceIds (issue 14): the declared consumers, one role assignment each; not the accounts
LOOPED_PARAMETERS = (
    "targetResourceIds", "discoverySubscriptionIds", "discoveryResourceGroups", "consumerResourceIds"
)
SUBSCRIPTIONS = [f"{i:08d}-0000-4000-8000-000000000000" for i in range(8)]


def deployed_count(params: dict[str, Any]) -> int:
    """Resources and modules main.bicep deploys: a loop counts its array's length (the arrays it may loop
    over are parameters, or the storage endpoints of the private-network option, off here); anything else
    counts once. Conditions are the same for both fleets compared, so each counts once too."""
    declared = bicep.resources(MAIN) + bicep.modules(MAIN)
    total = 0
    for declaration in declared:
        if declaration.loop is None:
            total += 1
            continue
        array = bicep.render(declaration.loop["detail"]["array_name"])
        if array in LOOPED_PARAMETERS:
            total += len(params.get(array, []))  # each parameter defaults to []
        else:
            assert "enablePrivateNetwork" in array, f"{declaration.symbol} loops over {array}"
    return total


def discovery_parameters(accounts: list[str]) -> dict[str, Any]:
    """What DEPLOY.md tells an operator to pass: the subscriptions in scope, never the accounts."""
    return {"targetResourceIds": [], "discoverySubscriptionIds": SUBSCRIPTIONS, "discoveryResourceGroups": []}


def fleet(size: int) -> list[str]:
    return [
        f"/subscriptions/{SUBSCRIPTIONS[i % 8]}/resourceGroups/rg{i % 25}"
        f"/providers/Microsoft.CognitiveServices/accounts/acct{i}"
        for i in range(size)
    ]


def test_discovery_deploys_the_same_resources_for_one_and_five_thousand_accounts() -> None:
    one, many = (
        deployed_count(discovery_parameters(fleet(1))),
        deployed_count(discovery_parameters(fleet(5000))),
    )
    assert one == many < ARM_RESOURCES_PER_DEPLOYMENT
    # one custom-role assignment per subscription in scope
    assert deployed_count({**discovery_parameters([]), "discoverySubscriptionIds": []}) == one - len(
        SUBSCRIPTIONS
    )


def test_the_explicit_list_grows_with_the_fleet_and_is_for_small_setups() -> None:
    small = deployed_count({"targetResourceIds": fleet(1)})
    assert deployed_count({"targetResourceIds": fleet(5000)}) == small + 4999 > ARM_RESOURCES_PER_DEPLOYMENT


def test_every_loop_in_main_iterates_over_scopes_targets_or_endpoints_only() -> None:
    loops = {
        d.symbol: bicep.render(d.loop["detail"]["array_name"])
        for d in bicep.resources(MAIN) + bicep.modules(MAIN)
        if d.loop is not None
    }
    assert loops == {
        "storageEndpoint": "enablePrivateNetwork ? storageEndpoints : []",
        "targetAccess": "targetResourceIds",
        "discoverySubscriptionAccess": "discoverySubscriptionIds",
        "discoveryGroupAccess": "discoveryResourceGroups",
        "consumerAccess": "consumerResourceIds",  # issue 14: one per declared consumer
    }


def test_a_management_group_scope_is_one_assignment_whatever_the_fleet() -> None:
    """The management-group choice: one conditional hop at the tenant (ARM's only way from a subscription
    deployment to a management group) deploying one assignment at the group - no loop anywhere, so the
    count is the same for 1 and 5,000 accounts under it."""
    hop = next(m for m in bicep.modules(MAIN) if m.symbol == "discoveryManagementGroupAccess")
    assert hop.loop is None and bicep.render(hop.condition) == "discoveryByManagementGroup"
    assert bicep.render(hop.body["scope"]) == "tenant()"
    [inner] = bicep.modules(bicep.module_file(hop))
    assert inner.loop is None and bicep.render(inner.body["scope"]) == "managementGroup(managementGroupId)"
    assert bicep.resources(bicep.module_file(hop)) == []  # the hop itself creates nothing
    [assignment] = bicep.resources(bicep.module_file(inner))
    assert assignment.type == "Microsoft.Authorization/roleAssignments" and assignment.loop is None
    group = {**discovery_parameters([]), "discoverySubscriptionIds": [], "discoveryManagementGroupId": "mg"}
    assert deployed_count(group) == deployed_count(discovery_parameters(fleet(5000))) - len(SUBSCRIPTIONS)
