"""Identity-based access everywhere: no shared keys, no local auth, RBAC vault, no publishing passwords."""

from __future__ import annotations

from tests.infra import bicep
from tests.infra.bicep import MAIN

FUNCTION_APP = bicep.app_module("function-app")


def test_storage_has_shared_key_access_disabled():
    storage = bicep.the_resource(bicep.app_module("storage"), "Microsoft.Storage/storageAccounts")
    properties = storage.properties
    assert properties["allowSharedKeyAccess"] is False
    assert properties["defaultToOAuthAuthentication"] is True
    assert properties["allowBlobPublicAccess"] is False
    assert properties["minimumTlsVersion"] == "TLS1_2"
    assert properties["supportsHttpsTrafficOnly"] is True


def test_application_insights_and_workspace_have_local_auth_disabled():
    monitoring = bicep.app_module("monitoring")
    insights = bicep.the_resource(monitoring, "Microsoft.Insights/components")
    assert insights.properties["DisableLocalAuth"] is True
    assert bicep.render(insights.properties["WorkspaceResourceId"]) == "logAnalytics.id"
    workspace = bicep.the_resource(monitoring, "Microsoft.OperationalInsights/workspaces")
    assert workspace.properties["features"]["disableLocalAuth"] is True


def test_new_vault_uses_rbac_with_soft_delete_and_purge_protection():
    vault = bicep.the_resource(bicep.app_module("key-vault"), "Microsoft.KeyVault/vaults")
    properties = vault.properties
    assert properties["enableRbacAuthorization"] is True
    assert properties["enablePurgeProtection"] is True
    assert properties["enableSoftDelete"] is True
    assert "accessPolicies" not in properties
    assert bicep.resolve(vault.path, properties["softDeleteRetentionInDays"]) == 90


def test_vault_is_created_only_when_no_existing_vault_is_named():
    call = bicep.module(MAIN, "keyVault")
    assert call.condition == "createKeyVault"
    assert bicep.render(bicep.variable(MAIN, "createKeyVault")) == "empty(existingKeyVaultName)"
    assert bicep.render(bicep.variable(MAIN, "keyVaultResourceGroupName")) == (
        "createKeyVault || empty(existingKeyVaultResourceGroupName) ? serviceResourceGroupName"
        " : existingKeyVaultResourceGroupName"
    )
    assert bicep.render(bicep.variable(MAIN, "keyVaultName")) == (
        "createKeyVault ? kv-${resourceToken} : existingKeyVaultName"
    )


def test_lifecycle_topic_accepts_only_entra_publishers():
    topic = bicep.the_resource(bicep.app_module("lifecycle-topic"), "Microsoft.EventGrid/topics")
    assert topic.properties["disableLocalAuth"] is True
    assert bicep.module(MAIN, "lifecycleTopic").condition == "enableLifecycleTopic"


def test_function_app_runs_on_flex_consumption_as_the_user_assigned_identity():
    plan = bicep.the_resource(FUNCTION_APP, "Microsoft.Web/serverfarms")
    assert plan.body["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    assert plan.properties["reserved"] is True
    site = bicep.the_resource(FUNCTION_APP, "Microsoft.Web/sites")
    assert site.body["kind"] == "functionapp,linux"
    assert site.body["identity"] == {
        "type": "UserAssigned",
        "userAssignedIdentities": {"'${identityId}'": {}},
    }
    assert site.properties["httpsOnly"] is True
    config = site.properties["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    assert config["scaleAndConcurrency"] == {
        "instanceMemoryMB": "instanceMemoryMB",
        "maximumInstanceCount": "maximumInstanceCount",
    }
    storage = config["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["value"] == "${storage.properties.primaryEndpoints.blob}${deploymentContainerName}"
    assert storage["authentication"] == {
        "type": "UserAssignedIdentity",
        "userAssignedIdentityResourceId": "identityId",
    }
    for name in ("instanceMemoryMB", "maximumInstanceCount"):
        assert bicep.render(bicep.module(MAIN, "functionApp").body["params"][name]) == name


def test_flex_instance_memory_and_scale_limits_are_constrained():
    assert bicep.decorator(MAIN, "instanceMemoryMB", "allowed") == [512, 2048, 4096]
    assert bicep.decorator(MAIN, "maximumInstanceCount", "max_value") == 1000


def test_the_deployment_container_is_the_one_storage_creates():
    main_params = bicep.module(MAIN, "storage").body["params"]
    app_params = bicep.module(MAIN, "functionApp").body["params"]
    assert (
        main_params["deploymentContainerName"]
        == app_params["deploymentContainerName"]
        == "deploymentContainerName"
    )
    container = bicep.resource(bicep.app_module("storage"), "deploymentContainer")
    assert container.body["name"] == "deploymentContainerName"


def test_publishing_passwords_are_disabled():
    policies = bicep.resources(FUNCTION_APP, "Microsoft.Web/sites/basicPublishingCredentialsPolicies")
    assert {policy.body["name"]: policy.properties["allow"] for policy in policies} == {
        "ftp": False,
        "scm": False,
    }


def test_admin_auth_returns_401_on_every_path_event_grid_included():
    auth = bicep.the_resource(FUNCTION_APP, "Microsoft.Web/sites/config")
    assert auth.body["name"] == "authsettingsV2"
    assert auth.condition == "enableAdminAuth"
    validation = auth.properties["globalValidation"]
    assert validation["requireAuthentication"] is True
    assert validation["unauthenticatedClientAction"] == "Return401"
    # No anonymous path: Event Grid presents an Entra token instead (test_events.py), because whether
    # an excludedPaths entry matches /runtime/webhooks/EventGrid is not documented.
    assert "excludedPaths" not in validation
    entra = auth.properties["identityProviders"]["azureActiveDirectory"]
    assert entra["enabled"] is True
    assert entra["registration"]["clientId"] == "adminAuthClientId"
    assert "clientSecretSettingName" not in entra["registration"], "validating bearer tokens needs no secret"
    # Event Grid asks for a token for the client id (or api://<client id>): both audiences are accepted.
    assert entra["validation"]["allowedAudiences"] == ["adminAuthClientId", "api://${adminAuthClientId}"]
    assert bicep.module(MAIN, "functionApp").body["params"]["enableAdminAuth"] == "enableAdminAuth"
