"""Emulated consumers (issue 14): App Service sites with Key Vault references and API Management named values,
read and refreshed through the service's real ARM adapters (azure-core pipeline, bearer tokens, HTTPS)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from emulator.client.control_client import ControlError
from rotation.consumers import Consumer, ConsumerKind
from rotation.errors import AzureAccessDenied, AzureRequestRejected
from shared.azure.arm_rest import ArmRest
from shared.azure.consumer_platforms import ArmConsumerPlatforms

SUB = "33333333-4444-5555-6666-777777777777"


def site_id(name: str) -> str:
    return f"/subscriptions/{SUB}/resourceGroups/rg-apps/providers/Microsoft.Web/sites/{name}"


def named_value_id(service: str, name: str) -> str:
    return (
        f"/subscriptions/{SUB}/resourceGroups/rg-apps/providers/Microsoft.ApiManagement/service/{service}"
        f"/namedValues/{name}"
    )


@pytest.fixture
def platforms(emulator, monkeypatch) -> ArmConsumerPlatforms:
    emulator.apply_env(monkeypatch)  # REQUESTS_CA_BUNDLE: the pipeline trusts the emulator's CA
    arm = emulator.env["ARM_ENDPOINT"]
    return ArmConsumerPlatforms(ArmRest(emulator.credential(), arm, f"{arm}/.default"))


@pytest.fixture
def secret(emulator, unique_name):
    client = emulator.secret_client()
    first = client.set_secret(unique_name, "first-value")
    return client, unique_name, first.properties.version


def reference(emulator, name: str) -> str:
    return f"@Microsoft.KeyVault(SecretUri={emulator.vault_url}secrets/{name})"


def versions(platforms: ArmConsumerPlatforms, consumer: Consumer) -> list[str | None]:
    return [r.version for r in platforms.observe(consumer).references]


def test_a_site_resolves_its_references_at_start_and_reports_the_active_version(
    emulator, platforms, secret, unique_name
):
    _, name, v1 = secret
    emulator.control.add_site(site_id(unique_name), {"OPENAI_KEY": reference(emulator, name), "PLAIN": "x"})
    site = Consumer(ConsumerKind.APP_SERVICE, site_id(unique_name))
    (ref,) = platforms.observe(site).references
    assert (ref.resolved, ref.version, ref.secret_name) == (True, v1, name)
    assert emulator.control.site_app_settings(unique_name) == {"OPENAI_KEY": "first-value", "PLAIN": "x"}


def test_a_new_version_is_picked_up_on_refresh_not_before(emulator, platforms, secret, unique_name):
    client, name, v1 = secret
    emulator.control.add_site(site_id(unique_name), {"K": reference(emulator, name)})
    site = Consumer(ConsumerKind.APP_SERVICE, site_id(unique_name))
    v2 = client.set_secret(name, "second-value").properties.version
    assert versions(platforms, site) == [v1]
    assert emulator.control.site_app_settings(unique_name) == {"K": "first-value"}
    platforms.refresh(site)
    assert versions(platforms, site) == [v2]
    assert emulator.control.site_app_settings(unique_name) == {"K": "second-value"}
    assert emulator.control.calls()["web.refresh_kv_references"] >= 1


def test_the_site_refetches_every_24_hours_of_the_emulator_clock(emulator, platforms, secret, unique_name):
    client, name, v1 = secret
    emulator.control.add_site(site_id(unique_name), {"K": reference(emulator, name)})
    site = Consumer(ConsumerKind.APP_SERVICE, site_id(unique_name))
    v2 = client.set_secret(name, "second-value").properties.version
    emulator.control.advance_clock(timedelta(hours=23).total_seconds())
    try:
        assert versions(platforms, site) == [v1]
        emulator.control.advance_clock(timedelta(hours=1, seconds=5).total_seconds())
        assert versions(platforms, site) == [v2]
    finally:
        emulator.control.advance_clock(-timedelta(hours=24, seconds=5).total_seconds())


def test_a_slow_site_moves_only_after_its_delay_and_a_stuck_one_never(
    emulator, platforms, secret, unique_name
):
    client, name, v1 = secret
    slow, stuck = site_id(unique_name + "-slow"), site_id(unique_name + "-stuck")
    for rid in (slow, stuck):
        emulator.control.add_site(rid, {"K": reference(emulator, name)})
    emulator.control.shape_consumer(slow, refresh_delay_seconds=120)
    emulator.control.shape_consumer(stuck, stuck=True)
    v2 = client.set_secret(name, "second-value").properties.version
    for rid in (slow, stuck):
        platforms.refresh(Consumer(ConsumerKind.APP_SERVICE, rid))
    assert versions(platforms, Consumer(ConsumerKind.APP_SERVICE, slow)) == [v1]
    emulator.control.advance_clock(121)
    try:
        assert versions(platforms, Consumer(ConsumerKind.APP_SERVICE, slow)) == [v2]
        assert versions(platforms, Consumer(ConsumerKind.APP_SERVICE, stuck)) == [v1]
        emulator.control.advance_clock(timedelta(hours=25).total_seconds())
        assert versions(platforms, Consumer(ConsumerKind.APP_SERVICE, stuck)) == [v1]
    finally:
        emulator.control.advance_clock(-121 - timedelta(hours=25).total_seconds())


def test_a_reference_to_a_missing_secret_stays_literal_and_reports_why(emulator, platforms, unique_name):
    literal = reference(emulator, unique_name + "-missing")
    emulator.control.add_site(site_id(unique_name), {"K": literal})
    (ref,) = platforms.observe(Consumer(ConsumerKind.APP_SERVICE, site_id(unique_name))).references
    assert (ref.resolved, ref.detail) == (False, "SecretNotFound")
    assert emulator.control.site_app_settings(unique_name) == {"K": literal}


def test_a_named_value_reports_when_it_last_fetched(emulator, platforms, secret, unique_name):
    _, name, _ = secret
    rid = named_value_id("apim-" + unique_name, "openai-key")
    emulator.control.add_named_value(rid, f"{emulator.vault_url}secrets/{name}")
    named_value = Consumer(ConsumerKind.API_MANAGEMENT, rid)
    before = platforms.observe(named_value)
    (ref,) = before.references
    assert ref.resolved and ref.secret_name == name and before.fetched_at is not None
    emulator.control.advance_clock(30)
    try:
        platforms.refresh(named_value)
        after = platforms.observe(named_value)
        assert after.fetched_at is not None and after.fetched_at - before.fetched_at >= timedelta(seconds=30)
        assert emulator.control.calls()["apim.refresh_secret"] >= 1
    finally:
        emulator.control.advance_clock(-30)


def test_unknown_consumers_and_missing_tokens_are_refused_as_arm_would(emulator, platforms, unique_name):
    with pytest.raises(AzureRequestRejected, match=r"web\.list_kv_references.*HTTP 404 ResourceNotFound"):
        platforms.observe(Consumer(ConsumerKind.APP_SERVICE, site_id(unique_name)))
    with pytest.raises(AzureRequestRejected, match=r"apim\.refresh_secret.*HTTP 404"):
        platforms.refresh(Consumer(ConsumerKind.API_MANAGEMENT, named_value_id("apim-x", unique_name)))
    with emulator.http_client() as http:
        bare = http.get(site_id(unique_name) + "/config/configreferences/appsettings?api-version=2024-11-01")
    assert bare.status_code == 401 and bare.json()["error"]["code"] == "AuthenticationFailed"


def test_an_injected_fault_reaches_the_adapter_as_a_domain_error(emulator, platforms, secret, unique_name):
    _, name, _ = secret
    emulator.control.add_site(site_id(unique_name), {"K": reference(emulator, name)})
    emulator.control.add_fault("web.refresh_kv_references", status=403, count=1)
    with pytest.raises(AzureAccessDenied, match="Consumer Refresher"):
        platforms.refresh(Consumer(ConsumerKind.APP_SERVICE, site_id(unique_name)))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"resourceId": "/subscriptions/s/resourceGroups/r/providers/Microsoft.Web/no/x", "appSettings": {}},
         "resourceId must be"),
        ({"resourceId": site_id("bad-settings"), "appSettings": {"K": 1}}, "appSettings must be"),
    ],
)  # fmt: skip
def test_bad_control_input_is_refused_and_creates_nothing(emulator, body, message):
    with pytest.raises(ControlError) as error:
        emulator.control._call("POST", "/sites", body)
    assert error.value.status == 400 and message in error.value.body
    assert all(c["resourceId"] != body["resourceId"] for c in emulator.control.consumers())
