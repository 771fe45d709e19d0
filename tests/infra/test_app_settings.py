"""The Function App's settings are exactly what the app validates (shared.settings.APP_SETTINGS) plus a
documented set of platform settings, and the values a deployment produces pass the app's validation."""

from __future__ import annotations

from typing import Any

import pytest

from shared.settings import APP_SETTINGS, load_settings
from tests.infra import bicep
from tests.infra.bicep import MAIN
from tests.infra.bicep_eval import Evaluator

FUNCTION_APP = bicep.app_module("function-app")
SPECS = {spec.name: spec for spec in APP_SETTINGS}

# Read by the Functions host or the Azure SDKs, not validated by the app (docs/DEPLOY.md lists them).
PLATFORM_SETTINGS = {
    "AzureWebJobsStorage__blobServiceUri",  # host: timer/singleton leases, Flex deployment
    "AzureWebJobsStorage__queueServiceUri",  # host: queue trigger (the app reads it too)
    "AzureWebJobsStorage__tableServiceUri",
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
    "AZURE_CLIENT_ID",  # azure-identity picks the user-assigned identity by it
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",  # Entra auth for telemetry (local auth is off)
}
# Host switches pausing the automatic triggers (disableRotation), named after the functions.
DISABLE_SETTING = "AzureWebJobs.{}.Disabled"

# App settings deliberately not set in Azure, and why.
LEFT_UNSET = {
    "AzureWebJobsStorage": "a connection string carries an account key; shared keys are off, "
    "the identity-based AzureWebJobsStorage__* settings replace it",
    "KEY_VAULT_VERIFY_CHALLENGE_RESOURCE": "only the local emulator turns the challenge check off",
}
# Set only when their feature is on: the app reads their presence as the feature switch.
CONDITIONAL = {
    "ADMIN_ROLE": "enableAdminAuth",
    "ROTATION_EVENTS_TOPIC_ENDPOINT": "enableLifecycleTopic",
    # issue 13: an explicit list, discovery scopes, or both; the app refuses to start with neither
    "ROTATION_TARGETS": "explicitTargets",
    "ROTATION_DISCOVERY_SCOPES": "discoveryEnabled",
    "ROTATION_DISCOVERY_TAG": "discoveryEnabled",
}
# Flex Consumption takes these from functionAppConfig and rejects them as app settings; the storage
# connection string would need shared keys.
NEVER_SET = {
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "FUNCTIONS_WORKER_RUNTIME_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTSHARE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "AzureWebJobsStorage",
}


def _object_keys(path, union_arg: str) -> dict[str, tuple[Any, str | None]]:
    """Settings of one union() argument: name -> (value expression, condition or None)."""
    value = bicep.variable(path, union_arg)
    condition = None
    if isinstance(value, dict) and value.get("operator", {}).get("type") == "conditional":
        operands = value["operator"]["operands"]
        assert operands["false_value"] == {}, f"{union_arg}: a disabled feature must add no setting"
        condition, value = bicep.render(operands["condition"]), operands["true_value"]
    assert isinstance(value, dict) and "function" not in value, f"{union_arg} is not an object literal"
    return {name: (expr, condition) for name, expr in value.items()}


def _union_args(path, name: str) -> list[str]:
    function = bicep.variable(path, name)["function"]
    assert function["type"] == "union", f"{name} must be a union() of named objects"
    return list(function["parameters"].values())


def bicep_app_settings() -> dict[str, tuple[Any, str | None]]:
    """Every app setting the templates set with a fixed name."""
    settings: dict[str, tuple[Any, str | None]] = {}
    for arg in _union_args(MAIN, "appSettings"):
        settings.update(_object_keys(MAIN, arg))
    args = _union_args(FUNCTION_APP, "allSettings")
    assert args == ["appSettings", "platformSettings", "disabledFunctionSettings"]
    platform = _object_keys(FUNCTION_APP, "platformSettings")
    assert not set(platform) & set(settings), "platform and app settings overlap"
    settings.update(platform)
    return settings


def test_the_site_gets_exactly_the_app_and_platform_settings():
    site = bicep.the_resource(FUNCTION_APP, "Microsoft.Web/sites")
    loop = site.properties["siteConfig"]["appSettings"]
    assert bicep.render(loop["loop_type"]["detail"]["array_name"]) == "items(allSettings)"
    assert bicep.render(loop["config"]) == "{name: setting.key, value: setting.value}"
    assert bicep.module(MAIN, "functionApp").body["params"]["appSettings"] == "appSettings"
    others = bicep.resources(FUNCTION_APP, "Microsoft.Web/sites/config")
    assert [config.body["name"] for config in others] == ["authsettingsV2"], (
        "no second source of app settings"
    )


def test_every_setting_the_app_validates_is_set_or_deliberately_left_unset():
    set_names = set(bicep_app_settings())
    assert set(LEFT_UNSET) <= set(SPECS), "LEFT_UNSET names a setting the app no longer reads"
    assert not any(SPECS[name].required for name in LEFT_UNSET)
    assert set(SPECS) - set(LEFT_UNSET) - set_names == set()
    assert set(LEFT_UNSET) & set_names == set()


def test_no_setting_is_set_that_neither_the_app_nor_the_platform_reads():
    assert set(bicep_app_settings()) - set(SPECS) - PLATFORM_SETTINGS == set()


def test_flex_and_shared_key_settings_are_never_set():
    assert set(bicep_app_settings()) & NEVER_SET == set()


def test_required_settings_are_set_unconditionally():
    settings = bicep_app_settings()
    for spec in APP_SETTINGS:
        if spec.required:
            assert settings[spec.name][1] is None, f"{spec.name} is required but conditional"


def test_optional_features_set_their_setting_only_when_enabled():
    conditions = {name: condition for name, (_, condition) in bicep_app_settings().items() if condition}
    assert conditions == CONDITIONAL


def test_disable_rotation_switches_off_exactly_the_automatic_triggers():
    triggers = bicep.function_triggers()
    automatic = {name for name, binding in triggers.items() if binding != "httpTrigger"}
    assert automatic == {"sweep_timer", "key_vault_events", "rotate_from_queue"}
    assert set(bicep.resolve(MAIN, "automaticRotationFunctions")) == automatic
    assert bicep.render(bicep.module(MAIN, "functionApp").body["params"]["disabledFunctions"]) == (
        "disableRotation ? automaticRotationFunctions : []"
    )
    names = Evaluator(FUNCTION_APP, params={"disabledFunctions": sorted(automatic)}).eval(
        "disabledFunctionSettings"
    )
    assert names == {DISABLE_SETTING.format(name): "true" for name in automatic}


# What Azure fills in at deployment time.
SAMPLES = {
    "keyVaultAccess.outputs.vaultUri": "https://kv-abc123.vault.azure.net/",
    "identity.outputs.clientId": "00000000-0000-0000-0000-00000000c11d",
    "lifecycleTopic.outputs.endpoint": "https://evgt-lifecycle.westeurope-1.eventgrid.azure.net/api/events",
    "environment().resourceManager": "https://management.azure.com/",
    "storage.properties.primaryEndpoints.blob": "https://stabc123.blob.core.windows.net/",
    "storage.properties.primaryEndpoints.queue": "https://stabc123.queue.core.windows.net/",
    "storage.properties.primaryEndpoints.table": "https://stabc123.table.core.windows.net/",
    "applicationInsights.properties.ConnectionString": "InstrumentationKey=0000;IngestionEndpoint=https://x/",
}
TARGET = (
    "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-ai"
    "/providers/Microsoft.CognitiveServices/accounts/ai-one"
)


def deployed_settings(**params: Any) -> dict[str, str]:
    main = Evaluator(
        MAIN, params={"environmentName": "prod", "location": "westeurope", **params}, samples=SAMPLES
    )
    app_settings = main.eval("appSettings")
    function_app = Evaluator(
        FUNCTION_APP,
        params={"appSettings": app_settings, "identityClientId": SAMPLES["identity.outputs.clientId"]},
        samples=SAMPLES,
    )
    values = function_app.eval("allSettings")
    assert all(isinstance(value, str) for value in values.values()), values
    return values


def test_deployed_settings_pass_the_apps_validation_and_mean_the_app_defaults():
    env = deployed_settings(targetResourceIds=[TARGET])
    loaded = load_settings(env)
    assert [target.resource_id for target in loaded.targets] == [TARGET]
    assert loaded.key_vault_url == SAMPLES["keyVaultAccess.outputs.vaultUri"]
    assert loaded.arm_endpoint == "https://management.azure.com"
    assert loaded.arm_scope == "https://management.azure.com/.default"
    assert loaded.admin_role is None and loaded.events_topic_endpoint is None
    # Bicep's defaults equal the app's: dropping every defaulted setting changes nothing.
    minimal = {name: value for name, value in env.items() if name not in SPECS or SPECS[name].default is None}
    assert load_settings(minimal) == loaded


def test_parameter_defaults_equal_the_app_defaults():
    main = Evaluator(MAIN, params={"environmentName": "prod", "location": "westeurope"}, samples=SAMPLES)
    defaulted = {name: main.eval(expr) for name, (expr, _) in bicep_app_settings().items() if name in SPECS}
    for name, value in defaulted.items():
        if SPECS[name].default is not None:
            assert value == SPECS[name].default, name


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"enableAdminAuth": True}, {"ADMIN_ROLE": "KeyRotation.Admin"}),
        ({"enableAdminAuth": True, "adminRole": "Rotation.Operator"}, {"ADMIN_ROLE": "Rotation.Operator"}),
        (
            {"enableLifecycleTopic": True},
            {"ROTATION_EVENTS_TOPIC_ENDPOINT": SAMPLES["lifecycleTopic.outputs.endpoint"]},
        ),
        (
            {"rotationFanout": True, "sweepConcurrency": 4},
            {"ROTATION_FANOUT": "true", "SWEEP_CONCURRENCY": "4"},
        ),
        (
            {
                "discoverySubscriptionIds": ["11111111-1111-1111-1111-111111111111"],
                "discoveryResourceGroups": ["22222222-2222-2222-2222-222222222222/rg-ai"],
                "keyVaultSecretWritesPer10s": 200,
            },
            {
                "ROTATION_DISCOVERY": "true",
                "ROTATION_DISCOVERY_SCOPES": (
                    "11111111-1111-1111-1111-111111111111,22222222-2222-2222-2222-222222222222"
                ),
                "ROTATION_DISCOVERY_TAG": "key-rotation=enabled",
                "KEY_VAULT_SECRET_WRITES_PER_10S": "200",
            },
        ),
        (
            # a management group: its subscriptions are unknown here, so the app lists every visible one
            {
                "discoveryManagementGroupId": "mg-ai-workloads",
                "discoverySubscriptionIds": ["11111111-1111-1111-1111-111111111111"],
            },
            {"ROTATION_DISCOVERY": "true", "ROTATION_DISCOVERY_SCOPES": ""},
        ),
    ],
)
def test_parameters_reach_the_app(params, expected):
    env = deployed_settings(targetResourceIds=[TARGET], **params)
    assert {name: env[name] for name in expected} == expected
    loaded = load_settings(env)
    if "ADMIN_ROLE" in expected:
        assert loaded.admin_role == expected["ADMIN_ROLE"]
    if "ROTATION_FANOUT" in expected:
        assert loaded.fanout is True and loaded.sweep_concurrency == 4


def test_targets_carry_the_rotation_parameters_the_app_accepts():
    other = TARGET.replace("rg-ai", "rg-other").replace("ai-one", "ai-two")
    env = deployed_settings(
        targetResourceIds=[TARGET, other], rotationPeriod="P7D", drainTime="PT2H", verifyMode="none"
    )
    targets = load_settings(env).targets
    assert [(t.resource_id, t.secret_prefix) for t in targets] == [(TARGET, "ai-one"), (other, "ai-two")]
    assert {(t.rotation_period.days, t.drain_time.total_seconds(), t.verify.value) for t in targets} == {
        (7, 7200.0, "none")
    }
