"""Key Vault near-expiry events reach the key_vault_events function, with retries and dead-lettering."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.infra import bicep
from tests.infra.bicep import INFRA, MAIN

SUBSCRIPTION = bicep.app_module("key-vault-events-subscription")
ACCESS = bicep.app_module("key-vault-access")
HOOK = INFRA / "hooks" / "postdeploy.sh"
HOOK_PS1 = INFRA / "hooks" / "postdeploy.ps1"


def test_system_topic_publishes_the_vaults_events_with_its_own_identity():
    topic = bicep.the_resource(ACCESS, "Microsoft.EventGrid/systemTopics")
    assert topic.properties["topicType"] == "Microsoft.KeyVault.vaults"
    assert bicep.render(topic.properties["source"]) == "vault.id"
    assert topic.body["identity"] == {"type": "SystemAssigned"}


def test_subscription_filters_to_near_expiry_and_expired_secrets():
    subscription = bicep.the_resource(SUBSCRIPTION, "Microsoft.EventGrid/systemTopics/eventSubscriptions")
    assert subscription.body["parent"] == "systemTopic"
    assert bicep.resource(SUBSCRIPTION, "systemTopic").existing
    assert subscription.properties["filter"] == {
        "includedEventTypes": ["Microsoft.KeyVault.SecretNearExpiry", "Microsoft.KeyVault.SecretExpired"]
    }
    assert subscription.properties["eventDeliverySchema"] == "EventGridSchema"


def _destination(**params):
    from tests.infra.bicep_eval import Evaluator

    required = {
        "systemTopicName": "evgt",
        "functionAppId": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Web/sites/func-abc",
        "deadLetterStorageAccountId": "st",
        "deadLetterContainerName": "dl",
    }
    subscription = bicep.the_resource(SUBSCRIPTION, "Microsoft.EventGrid/systemTopics/eventSubscriptions")
    return Evaluator(SUBSCRIPTION, params={**required, **params}).eval(subscription.properties["destination"])


def test_subscription_delivers_to_the_key_vault_events_function():
    triggers = bicep.function_triggers()
    destination = _destination()
    assert destination["endpointType"] == "AzureFunction"
    assert destination["properties"]["resourceId"] == (
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Web/sites/func-abc/functions/key_vault_events"
    )
    function_name = bicep.param(SUBSCRIPTION, "functionName")["default"]
    assert triggers[function_name] == "eventGridTrigger"


def test_with_admin_auth_events_arrive_as_an_entra_authenticated_webhook():
    # Event Grid's documented design for a function protected by a Microsoft Entra app: a WebHook
    # destination whose deliveries carry a bearer token for that app (docs/DEPLOY.md).
    url = "https://func-abc.azurewebsites.net/runtime/webhooks/eventgrid?functionName=key_vault_events&code=k"
    destination = _destination(
        entraApplicationIdOrUri="11111111-2222-3333-4444-555555555555",
        entraTenantId="tenant-id",
        webhookEndpointUrl=url,
    )
    assert destination == {
        "endpointType": "WebHook",
        "properties": {
            "endpointUrl": url,
            "azureActiveDirectoryApplicationIdOrUri": "11111111-2222-3333-4444-555555555555",
            "azureActiveDirectoryTenantId": "tenant-id",
            "maxEventsPerBatch": 1,
            "preferredBatchSizeInKilobytes": 64,
        },
    }
    # the URL carries the Event Grid extension's system key: never in deployment history
    decorators = [d["type"] for d in bicep.param(SUBSCRIPTION, "webhookEndpointUrl")["decorators"]]
    assert "secure" in decorators


def test_main_tells_the_hook_which_app_protects_the_function():
    output = bicep.render(bicep.output(MAIN, "KEY_VAULT_EVENTS_ENTRA_APPLICATION"))
    assert output == "enableAdminAuth ? adminAuthClientId : "
    # the audience Event Grid asks a token for is one the app's authentication accepts
    auth = bicep.the_resource(bicep.app_module("function-app"), "Microsoft.Web/sites/config")
    assert (
        "adminAuthClientId"
        in auth.properties["identityProviders"]["azureActiveDirectory"]["validation"]["allowedAudiences"]
    )
    for name in ("AZURE_TENANT_ID", "AZURE_FUNCTION_APP_URL"):
        assert name in bicep.parse(MAIN)["outputs"]


def test_retry_policy_and_dead_lettering_with_the_topic_identity():
    properties = bicep.the_resource(
        SUBSCRIPTION, "Microsoft.EventGrid/systemTopics/eventSubscriptions"
    ).properties
    assert properties["retryPolicy"] == {
        "maxDeliveryAttempts": "maxDeliveryAttempts",
        "eventTimeToLiveInMinutes": "eventTimeToLiveInMinutes",
    }
    assert bicep.param(SUBSCRIPTION, "maxDeliveryAttempts")["default"] == 30
    assert bicep.decorator(SUBSCRIPTION, "maxDeliveryAttempts", "max_value") == 30
    assert bicep.param(SUBSCRIPTION, "eventTimeToLiveInMinutes")["default"] == 1440
    assert "deadLetterDestination" not in properties, (
        "key-based dead-lettering cannot work: shared keys are off"
    )
    dead_letter = properties["deadLetterWithResourceIdentity"]
    assert dead_letter["identity"] == {"type": "SystemAssigned"}
    assert dead_letter["deadLetterDestination"] == {
        "endpointType": "StorageBlob",
        "properties": {
            "resourceId": "deadLetterStorageAccountId",
            "blobContainerName": "deadLetterContainerName",
        },
    }


def test_dead_letter_container_exists_and_only_the_topic_may_write_it():
    assert bicep.resolve(MAIN, "deadLetterContainerName") == "key-vault-events-dead-letter"
    assert (
        bicep.module(MAIN, "storage").body["params"]["deadLetterContainerName"] == "deadLetterContainerName"
    )
    assert (
        bicep.resource(bicep.app_module("storage"), "deadLetterContainer").body["name"]
        == "deadLetterContainerName"
    )
    assert bicep.render(bicep.output(MAIN, "DEAD_LETTER_CONTAINER_NAME")) == "deadLetterContainerName"
    writer = bicep.resource(bicep.app_module("service-roles"), "deadLetterWriter")
    assert writer.body["scope"] == "deadLetterContainer"


def test_the_subscription_is_not_part_of_provisioning():
    # Event Grid validates the function when the subscription is created: it must come after deploy.
    for path in bicep.bicep_files():
        if path != SUBSCRIPTION:
            assert not bicep.resources(path, "Microsoft.EventGrid/systemTopics/eventSubscriptions"), path.name
            assert all(bicep.module_file(call) != SUBSCRIPTION for call in bicep.modules(path)), path.name


def _required_params(path: Path) -> set[str]:
    return {name for name, spec in bicep.parse(path)["parameters"].items() if "default" not in spec}


@pytest.mark.parametrize("script", [HOOK, HOOK_PS1], ids=lambda p: p.name)
def test_hooks_deploy_the_subscription_template_with_every_required_parameter(script: Path):
    text = script.read_text()
    assert "app/key-vault-events-subscription.bicep" in text
    for name in _required_params(SUBSCRIPTION) | {"functionName"}:
        assert f"{name}=" in text, f"{script.name} does not pass {name}"
    outputs = set(bicep.parse(MAIN)["outputs"])
    needed = {
        "AZURE_RESOURCE_GROUP",
        "AZURE_FUNCTION_APP_NAME",
        "AZURE_FUNCTION_APP_ID",
        "KEY_VAULT_RESOURCE_GROUP",
        "KEY_VAULT_EVENTS_SYSTEM_TOPIC_NAME",
        "DEAD_LETTER_STORAGE_ACCOUNT_ID",
        "DEAD_LETTER_CONTAINER_NAME",
    }
    assert needed <= outputs
    for name in needed | {"AZURE_SUBSCRIPTION_ID"}:  # azd itself sets AZURE_SUBSCRIPTION_ID
        assert name in text, f"{script.name} does not use {name}"


HOOK_ENV = {
    "AZURE_SUBSCRIPTION_ID": "00000000-0000-0000-0000-000000000001",
    "AZURE_RESOURCE_GROUP": "rg-prod",
    "AZURE_FUNCTION_APP_NAME": "func-abc",
    "AZURE_FUNCTION_APP_ID": "/subscriptions/s/resourceGroups/rg-prod/providers/Microsoft.Web/sites/func-abc",
    "KEY_VAULT_RESOURCE_GROUP": "rg-vault",
    "KEY_VAULT_EVENTS_SYSTEM_TOPIC_NAME": "evgt-kv-abc",
    "DEAD_LETTER_STORAGE_ACCOUNT_ID": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/x/st",
    "DEAD_LETTER_CONTAINER_NAME": "key-vault-events-dead-letter",
    "POSTDEPLOY_WAIT_SECONDS": "0",
    "POSTDEPLOY_WAIT_ATTEMPTS": "3",
}


def _run_hook(
    tmp_path: Path, env: dict[str, str], function_appears_after: int, system_key: str = ""
) -> subprocess.CompletedProcess[str]:
    """Run the POSIX hook with a stand-in `az` on PATH that records its arguments (no Azure here); it
    copies any `@file` parameters file it is given to params.log, as the real az would read it."""
    log = tmp_path / "az.log"
    az = tmp_path / "az"
    az.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> "{log}"\n'
        'if [ "$1 $2" = "functionapp function" ]; then\n'
        f'  n=$(grep -c "^functionapp function" "{log}")\n'
        f'  [ "$n" -gt {function_appears_after} ] || exit 3\n'
        "fi\n"
        'if [ "$1 $2 $3" = "functionapp keys list" ]; then\n'
        f'  echo "{system_key}"\n'
        "fi\n"
        'for arg in "$@"; do\n'
        '  case "$arg" in @*) f="${arg#@}"; cat "$f" >> "' + str(tmp_path / "params.log") + '"; '
        'ls -l "$f" | cut -c1-10 >> "' + str(tmp_path / "mode.log") + '";; esac\n'
        "done\n"
    )
    az.chmod(az.stat().st_mode | stat.S_IXUSR)
    return subprocess.run(
        ["sh", str(HOOK)],
        env={"PATH": f"{tmp_path}:{os.environ['PATH']}", **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_hook_waits_for_the_function_then_deploys_the_subscription(tmp_path: Path):
    result = _run_hook(tmp_path, HOOK_ENV, function_appears_after=1)
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "az.log").read_text().splitlines()
    assert [call.split()[:2] for call in calls] == [["functionapp", "function"]] * 2 + [
        ["deployment", "group"]
    ]
    deploy = calls[-1]
    template = deploy.split("--template-file ")[1].split()[0]
    assert Path(template).resolve() == SUBSCRIPTION
    assert "--resource-group rg-vault" in deploy
    assert "--subscription 00000000-0000-0000-0000-000000000001" in deploy
    for expected in (
        "systemTopicName=evgt-kv-abc",
        f"functionAppId={HOOK_ENV['AZURE_FUNCTION_APP_ID']}",
        "functionName=key_vault_events",
        f"deadLetterStorageAccountId={HOOK_ENV['DEAD_LETTER_STORAGE_ACCOUNT_ID']}",
        "deadLetterContainerName=key-vault-events-dead-letter",
    ):
        assert expected in deploy
    assert "--function-name key_vault_events" in calls[0]


def test_hook_gives_up_when_the_function_never_appears(tmp_path: Path):
    result = _run_hook(tmp_path, HOOK_ENV, function_appears_after=99)
    assert result.returncode == 1
    assert "did not appear" in result.stderr and "key_vault_events" in result.stderr
    assert "deployment" not in (tmp_path / "az.log").read_text()


def test_hook_names_a_missing_output_and_changes_nothing(tmp_path: Path):
    env = {name: value for name, value in HOOK_ENV.items() if name != "KEY_VAULT_EVENTS_SYSTEM_TOPIC_NAME"}
    result = _run_hook(tmp_path, env, function_appears_after=0)
    assert result.returncode == 2
    assert "KEY_VAULT_EVENTS_SYSTEM_TOPIC_NAME is not set" in result.stderr
    assert not (tmp_path / "az.log").exists()


ENTRA_ENV = {
    **HOOK_ENV,
    "KEY_VAULT_EVENTS_ENTRA_APPLICATION": "11111111-2222-3333-4444-555555555555",
    "AZURE_TENANT_ID": "tenant-id",
    "AZURE_FUNCTION_APP_URL": "https://func-abc.azurewebsites.net",
}


def test_hook_with_admin_auth_deploys_an_entra_webhook_and_keeps_the_key_off_the_command_line(tmp_path: Path):
    result = _run_hook(tmp_path, ENTRA_ENV, function_appears_after=0, system_key="SYSTEMKEY123==")
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "az.log").read_text().splitlines()
    assert [call.split()[:3] for call in calls] == [
        ["functionapp", "function", "show"],
        ["functionapp", "keys", "list"],
        ["deployment", "group", "create"],
    ]
    assert "--query systemKeys.eventgrid_extension" in calls[1]
    deploy = calls[-1]
    assert "entraApplicationIdOrUri=11111111-2222-3333-4444-555555555555" in deploy
    assert "entraTenantId=tenant-id" in deploy
    assert "SYSTEMKEY123" not in deploy and "SYSTEMKEY123" not in result.stdout + result.stderr
    parameters = json.loads((tmp_path / "params.log").read_text())["parameters"]
    assert parameters == {
        "webhookEndpointUrl": {
            "value": "https://func-abc.azurewebsites.net/runtime/webhooks/eventgrid"
            "?functionName=key_vault_events&code=SYSTEMKEY123=="
        }
    }
    assert (tmp_path / "mode.log").read_text().startswith("-rw-------")  # private while it exists
    temp_file = deploy.split("--parameters @")[1].split()[0]
    assert not Path(temp_file).exists(), "the key file outlives the hook"


def test_hook_with_admin_auth_stops_without_the_system_key(tmp_path: Path):
    result = _run_hook(tmp_path, ENTRA_ENV, function_appears_after=0, system_key="")
    assert result.returncode == 1
    assert "eventgrid_extension system key" in result.stderr
    assert "deployment" not in (tmp_path / "az.log").read_text()


def test_hook_without_admin_auth_still_uses_the_azure_function_destination(tmp_path: Path):
    result = _run_hook(tmp_path, {**HOOK_ENV, "KEY_VAULT_EVENTS_ENTRA_APPLICATION": ""}, 0, "KEY")
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "az.log").read_text()
    assert "keys list" not in calls and "entraApplicationIdOrUri" not in calls
    assert not (tmp_path / "params.log").exists()


def test_windows_hook_follows_the_same_admin_auth_design():
    text = HOOK_PS1.read_text()
    for needle in (
        "KEY_VAULT_EVENTS_ENTRA_APPLICATION",
        "systemKeys.eventgrid_extension",
        "entraApplicationIdOrUri=",
        "entraTenantId=",
        "webhookEndpointUrl",
        "/runtime/webhooks/eventgrid?functionName=",
        "Remove-Item",
    ):
        assert needle in text, needle
