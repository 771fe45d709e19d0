"""Least privilege: which roles the templates grant, to whom, on what, under deterministic names."""

from __future__ import annotations

import re

from tests.infra import bicep
from tests.infra.bicep import MAIN

ROLE_NAMES = {
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": "Key Vault Secrets Officer",
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe": "Storage Blob Data Contributor",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
    "d5a91429-5739-47e2-a06b-3470a27159e7": "EventGrid Data Sender",
}
CUSTOM_ROLE = "AI Services Key Rotator"
CONSUMER_ROLE = "AI Services Key Rotation Consumer Refresher"  # issue 14: only on declared consumers
# Broad roles the service must never get.
FORBIDDEN_ROLE_IDS = {
    "25fbc0a9-bd7c-42a3-aa1a-3b75d497ee68",  # Cognitive Services Contributor
    "b24988ac-6180-42a0-ab88-20f7382dd24c",  # Contributor
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",  # Owner
    "00482a5a-887f-4fb3-b363-3b7fe8e74483",  # Key Vault Administrator
    "17d1049b-9a84-46fb-8f53-869881c3d3ab",  # Storage Account Contributor
}

APP = "principalId"  # the service identity, as each module names its parameter
TOPIC = "keyVaultEventsTopicPrincipalId"

# (role, resource type of the scope, principal parameter)
EXPECTED_GRANTS = {
    ("Key Vault Secrets Officer", "Microsoft.KeyVault/vaults", APP),
    (CUSTOM_ROLE, "Microsoft.CognitiveServices/accounts", APP),
    # discovery (issue 13): once per subscription or resource group in scope, never per account
    (CUSTOM_ROLE, "subscription", APP),
    (CUSTOM_ROLE, "resourceGroup", APP),
    (CUSTOM_ROLE, "managementGroup", APP),
    ("Storage Blob Data Owner", "Microsoft.Storage/storageAccounts", APP),
    ("Storage Queue Data Contributor", "Microsoft.Storage/storageAccounts", APP),
    ("Storage Table Data Contributor", "Microsoft.Storage/storageAccounts", APP),
    ("Monitoring Metrics Publisher", "Microsoft.Insights/components", APP),
    ("EventGrid Data Sender", "Microsoft.EventGrid/topics", APP),
    ("Storage Blob Data Contributor", "Microsoft.Storage/storageAccounts/blobServices/containers", TOPIC),
    (CONSUMER_ROLE, "Microsoft.Web/sites", APP),
    (CONSUMER_ROLE, "Microsoft.ApiManagement/service", APP),
}


def _role_of(assignment: bicep.Declaration) -> str:
    role_ref = assignment.properties["roleDefinitionId"]["function"]["parameters"]["resource_name_1"]
    if role_ref == "roleDefinitionGuid":  # the custom role, created in main.bicep and passed in
        return CUSTOM_ROLE
    if role_ref == "consumerRoleGuid":  # the consumers' custom role, likewise
        return CONSUMER_ROLE
    role_id = bicep.resolve(assignment.path, role_ref)
    assert role_id not in FORBIDDEN_ROLE_IDS, f"{assignment.symbol} grants a forbidden broad role"
    assert role_id in ROLE_NAMES, f"{assignment.symbol} grants unexpected role {role_id}"
    return ROLE_NAMES[role_id]


def _scope_type(assignment: bicep.Declaration) -> str:
    """The type of the resource an assignment is scoped to; without ``scope``, the module's own target
    scope (a subscription- or resource-group-wide assignment)."""
    if "scope" in assignment.body:
        return bicep.resource(assignment.path, assignment.body["scope"]).type
    match = re.search(r"^targetScope = '(\w+)'", assignment.path.read_text(), re.MULTILINE)
    return match.group(1) if match else "resourceGroup"


def _scope_id(assignment: bicep.Declaration) -> str:
    if "scope" in assignment.body:
        return f"{assignment.body['scope']}.id"
    return f"{_scope_type(assignment)}().id"


def _grants() -> dict[tuple[str, str, str], bicep.Declaration]:
    grants = {}
    for assignment in bicep.all_resources("Microsoft.Authorization/roleAssignments"):
        key = (_role_of(assignment), _scope_type(assignment), assignment.properties["principalId"])
        assert key not in grants, f"{key} granted twice"
        grants[key] = assignment
    return grants


def test_exactly_the_expected_roles_on_the_expected_scopes():
    assert set(_grants()) == EXPECTED_GRANTS


def test_role_assignment_names_are_guid_of_scope_principal_and_role():
    for assignment in bicep.all_resources("Microsoft.Authorization/roleAssignments"):
        role_ref = assignment.properties["roleDefinitionId"]["function"]["parameters"]["resource_name_1"]
        expected = f"guid({_scope_id(assignment)}, {assignment.properties['principalId']}, {role_ref})"
        assert bicep.render(assignment.body["name"]) == expected, assignment.symbol
        assert assignment.properties["principalType"] == "ServicePrincipal", assignment.symbol


def test_every_role_assignment_has_a_comment_naming_its_role():
    for (role, _, _), assignment in _grants().items():
        assert role in bicep.comment_before(assignment.path, assignment.symbol), assignment.symbol


def test_every_role_guid_in_the_templates_is_a_known_role():
    # A typo in a GUID would silently grant another role; the variable's comment names the role too.
    for path in bicep.bicep_files():
        text = path.read_text()
        for guid in set(
            re.findall(r"'([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})'", text)
        ):
            assert guid in ROLE_NAMES, f"{path.name}: unknown role id {guid}"


def test_custom_role_allows_exactly_read_list_and_regenerate_keys():
    role = bicep.resource(MAIN, "keyRotatorRole")
    properties = role.properties
    assert properties["type"] == "CustomRole"
    assert CUSTOM_ROLE in properties["roleName"] and "${environmentName}" in properties["roleName"]
    # unique per tenant: the same azd environment name in another subscription must not collide
    assert "${subscription().subscriptionId}" in properties["roleName"]
    [permission] = properties["permissions"]
    assert sorted(permission["actions"]) == sorted(
        [
            "Microsoft.CognitiveServices/accounts/read",
            "Microsoft.CognitiveServices/accounts/listKeys/action",
            "Microsoft.CognitiveServices/accounts/regenerateKey/action",
        ]
    )
    assert (
        permission["notActions"] == []
        and permission["dataActions"] == []
        and permission["notDataActions"] == []
    )
    assert (
        bicep.render(properties["assignableScopes"])
        == "union([subscription().id], targetSubscriptionScopes, discoverySubscriptionScopes, "
        "discoveryManagementGroupScopes)"
    )
    assert bicep.render(bicep.variable(MAIN, "discoveryManagementGroupScopes")) == (
        "discoveryByManagementGroup ? "
        "[/providers/Microsoft.Management/managementGroups/${discoveryManagementGroupId}] : []"
    )
    assert bicep.render(bicep.variable(MAIN, "targetSubscriptionScopes")) == (
        "map(targetResourceIds, id => /subscriptions/${split(id, '/')[2]})"
    )
    assert (
        bicep.render(role.body["name"]) == "guid(subscription().id, environmentName, ai-services-key-rotator)"
    )


def test_custom_role_is_assigned_on_each_target_account_in_its_own_resource_group():
    call = bicep.module(MAIN, "targetAccess")
    assert call.loop["detail"] == {
        "item_name": "targetId",
        "index_name": "index",
        "array_name": "targetResourceIds",
    }
    assert bicep.render(call.body["scope"]) == "resourceGroup(split(targetId, /)[2], split(targetId, /)[4])"
    params = {name: bicep.render(value) for name, value in call.body["params"].items()}
    assert params == {
        "accountName": "last(split(targetId, /))",
        "principalId": "identity.outputs.principalId",
        "roleDefinitionGuid": "keyRotatorRole.name",
    }
    account = bicep.resource(bicep.app_module("target-access"), "account")
    assert account.existing and account.body["name"] == "accountName"


def test_each_module_grants_to_the_identity_main_passes():
    service_principal = "identity.outputs.principalId"
    assert (
        bicep.render(bicep.module(MAIN, "keyVaultAccess").body["params"]["principalId"]) == service_principal
    )
    roles = bicep.module(MAIN, "serviceRoles").body["params"]
    assert bicep.render(roles["principalId"]) == service_principal
    assert bicep.render(roles[TOPIC]) == "keyVaultAccess.outputs.systemTopicPrincipalId"
    assert bicep.render(bicep.output(bicep.app_module("key-vault-access"), "systemTopicPrincipalId")) == (
        "systemTopic.identity.principalId"
    )


def test_the_vault_role_is_scoped_to_the_vault_in_its_own_resource_group():
    call = bicep.module(MAIN, "keyVaultAccess")
    assert bicep.render(call.body["scope"]) == "resourceGroup(keyVaultResourceGroupName)"
    vault = bicep.resource(bicep.app_module("key-vault-access"), "vault")
    assert vault.existing and vault.body["name"] == "keyVaultName"


def test_optional_grants_follow_their_feature():
    sender = bicep.resource(bicep.app_module("service-roles"), "lifecycleSender")
    assert bicep.render(sender.condition) == "!empty(lifecycleTopicName)"
    passed = bicep.module(MAIN, "serviceRoles").body["params"]["lifecycleTopicName"]
    assert bicep.render(passed) == "enableLifecycleTopic ? lifecycleTopic.outputs.name : "


def test_consumer_role_allows_exactly_the_refresh_and_read_calls_and_is_assigned_only_on_consumers():
    roles = {r.symbol for r in bicep.resources(MAIN, "Microsoft.Authorization/roleDefinitions")}
    assert roles == {"keyRotatorRole", "consumerRefresherRole"}
    role = bicep.resource(MAIN, "consumerRefresherRole")
    name = role.properties["roleName"]
    assert CONSUMER_ROLE in name and "${environmentName}" in name
    [permission] = role.properties["permissions"]
    assert sorted(permission["actions"]) == sorted(
        [
            "Microsoft.Web/sites/config/Read",  # GET {site}/config/configreferences/appsettings
            "Microsoft.Web/sites/config/Write",  # POST {site}/config/configreferences/appsettings/refresh
            "Microsoft.ApiManagement/service/namedValues/read",  # GET {named value}
            "Microsoft.ApiManagement/service/namedValues/refreshSecret/action",  # POST …/refreshSecret
        ]
    )
    assert permission["notActions"] == permission["dataActions"] == permission["notDataActions"] == []
    call = bicep.module(MAIN, "consumerAccess")
    assert call.loop["detail"]["array_name"] == "consumerResourceIds"
    assert bicep.render(call.body["scope"]) == (
        "resourceGroup(split(consumerId, /)[2], split(consumerId, /)[4])"
    )
    assert bicep.render(call.body["params"]["consumerRoleGuid"]) == "consumerRefresherRole.name"
