"""Injected faults, latency and throttling, as the real SDK clients experience them (own emulator each)."""

from __future__ import annotations

import time

import pytest
from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

from emulator.client.control_client import ControlError
from tests.emulator.conftest import arm_scope, token_for

GROUP, ACCOUNT = "rg-demo", "ai-services"


def primed_secret_client(emu, **kwargs):
    """A SecretClient that has done its challenge round-trip, with call counters zeroed."""
    client = emu.secret_client(**kwargs)
    client.set_secret("primed", "v")
    emu.control.reset_calls()
    return client


def test_key_vault_429_retry_after_is_honoured_by_the_sdk(fresh_emulator):
    client = primed_secret_client(fresh_emulator)
    fresh_emulator.control.add_fault("keyvault.get_secret", status=429, retry_after=2)
    started = time.monotonic()
    assert client.get_secret("primed").value == "v"
    waited = time.monotonic() - started
    assert 2.0 <= waited < 4.0
    assert fresh_emulator.control.calls()["keyvault.get_secret"] == 2


def test_arm_429_retry_after_is_honoured_by_the_sdk(fresh_emulator):
    client = fresh_emulator.arm_client()
    client.accounts.get(GROUP, ACCOUNT)
    fresh_emulator.control.reset_calls()
    fresh_emulator.control.add_fault("arm.list_keys", status=429, retry_after=1)
    started = time.monotonic()
    assert client.accounts.list_keys(GROUP, ACCOUNT).key1
    assert 1.0 <= time.monotonic() - started < 3.0
    assert fresh_emulator.control.calls()["arm.list_keys"] == 2


def test_arm_write_token_bucket_answers_429_with_retry_after(fresh_emulator):
    fresh_emulator.control.set_throttling(writeCapacity=2, writeRefillPerSecond=1)
    headers = {"Authorization": f"Bearer {token_for(fresh_emulator, arm_scope(fresh_emulator))}"}
    path = (
        f"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/{GROUP}"
        f"/providers/Microsoft.CognitiveServices/accounts/{ACCOUNT}/listKeys"
    )
    with fresh_emulator.http_client() as http:
        started = time.monotonic()
        statuses = [http.post(path, params={"api-version": "2025-09-01"}, headers=headers) for _ in range(3)]
        elapsed = time.monotonic() - started
    assert [r.status_code for r in statuses] == [200, 200, 429]
    throttled = statuses[2]
    # ARM's code for its own throttling (issue 13; MicrosoftDocs/azure-docs#105248), not a generic one.
    assert throttled.json()["error"]["code"] == "SubscriptionRequestsThrottled"
    # The global bucket holds 15x: 30 - 2 = 28, plus what its 15/s refilled while the three requests ran
    # (a token per 67 ms: on a slow machine the exact 28 was 29).
    remaining_global = int(throttled.headers["x-ms-ratelimit-remaining-subscription-global-writes"])
    assert 28 <= remaining_global <= 28 + int(15 * elapsed)
    assert int(throttled.headers["Retry-After"]) >= 1
    assert throttled.headers["x-ms-ratelimit-remaining-subscription-writes"] == "0"
    # The SDK waits as told and then succeeds.
    client = fresh_emulator.arm_client()
    started = time.monotonic()
    assert client.accounts.list_keys(GROUP, ACCOUNT).key1
    assert time.monotonic() - started >= 0.5


def test_default_write_bucket_is_about_200(fresh_emulator):
    headers = {"Authorization": f"Bearer {token_for(fresh_emulator, arm_scope(fresh_emulator))}"}
    path = (
        f"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/{GROUP}"
        f"/providers/Microsoft.CognitiveServices/accounts/{ACCOUNT}/listKeys"
    )
    with fresh_emulator.http_client() as http:
        codes = [
            http.post(path, params={"api-version": "2025-09-01"}, headers=headers).status_code
            for _ in range(230)
        ]
    first_throttle = codes.index(429)
    assert 195 <= first_throttle <= 225  # 200 plus what refilled at 10/s while we were sending


def test_injected_500_is_retried_by_the_sdk(fresh_emulator):
    client = primed_secret_client(fresh_emulator)
    fresh_emulator.control.add_fault("keyvault.get_secret", status=500, count=2)
    assert client.get_secret("primed").value == "v"
    assert fresh_emulator.control.calls()["keyvault.get_secret"] == 3


def test_persistent_503_surfaces_as_http_response_error(fresh_emulator):
    client = primed_secret_client(fresh_emulator, retry_total=1)
    fresh_emulator.control.add_fault("keyvault.set_secret", status=503, count=5)
    with pytest.raises(HttpResponseError) as raised:
        client.set_secret("primed", "changed")
    assert raised.value.status_code == 503
    assert raised.value.error.code == "ServiceUnavailable"
    fresh_emulator.control.clear_faults()
    assert client.get_secret("primed").value == "v"  # the fault ran before the operation: nothing changed


def test_timeout_fault_trips_the_client_read_timeout(fresh_emulator):
    client = primed_secret_client(fresh_emulator, retry_total=0)
    fresh_emulator.control.add_fault("keyvault.get_secret", action="timeout", timeout_seconds=5)
    started = time.monotonic()
    with pytest.raises((ServiceResponseError, ServiceRequestError)):
        client.get_secret("primed", read_timeout=1)
    assert 0.9 <= time.monotonic() - started < 4.5


def test_dropped_connection_is_retried_and_then_succeeds(fresh_emulator):
    client = primed_secret_client(fresh_emulator)
    fresh_emulator.control.add_fault("keyvault.get_secret", action="drop", count=1)
    assert client.get_secret("primed").value == "v"
    assert fresh_emulator.control.calls()["keyvault.get_secret"] == 2


def test_dropped_connections_without_retries_raise(fresh_emulator):
    client = fresh_emulator.arm_client(retry_total=0)
    fresh_emulator.control.add_fault("arm.get_account", action="drop", count=1)
    with pytest.raises((ServiceResponseError, ServiceRequestError)):
        client.accounts.get(GROUP, ACCOUNT)
    assert client.accounts.get(GROUP, ACCOUNT).name == ACCOUNT


def test_fault_after_the_effect_loses_the_response_but_keeps_the_change(fresh_emulator):
    client = fresh_emulator.arm_client(retry_total=0)
    before = client.accounts.list_keys(GROUP, ACCOUNT)
    fresh_emulator.control.add_fault("arm.regenerate_key", status=500, when="after")
    with pytest.raises(HttpResponseError):
        client.accounts.regenerate_key(GROUP, ACCOUNT, "Key2")
    after = client.accounts.list_keys(GROUP, ACCOUNT)
    assert after.key2 != before.key2 and after.key1 == before.key1


def test_latency_applies_per_operation(fresh_emulator):
    client = primed_secret_client(fresh_emulator)
    fresh_emulator.control.set_latency(0.4, operation="keyvault.get_secret")
    started = time.monotonic()
    client.get_secret("primed")
    slow = time.monotonic() - started
    started = time.monotonic()
    client.set_secret("primed", "v2")
    fast = time.monotonic() - started
    assert slow >= 0.4 and fast < 0.3


def test_faults_are_consumed_in_order_and_listed(fresh_emulator):
    control = fresh_emulator.control
    control.add_fault("dataplane.request", status=503, count=2, retry_after=1)
    assert control.faults() == [
        {
            "operation": "dataplane.request",
            "action": "status",
            "status": 503,
            "count": 2,
            "retryAfter": 1,
            "timeoutSeconds": 30.0,
            "when": "before",
            "code": None,
        }
    ]
    url = fresh_emulator.dataplane_url("ai-services") + "openai/models"
    with fresh_emulator.http_client() as http:
        codes = [http.get(url, headers={"api-key": "whatever"}) for _ in range(3)]
    assert [c.status_code for c in codes] == [503, 503, 401]
    assert codes[0].headers["Retry-After"] == "1"
    assert control.faults() == []


@pytest.mark.parametrize(
    "body",
    [
        {"operation": "nope", "status": 500},
        {"operation": "keyvault.get_secret", "status": 200},
        {"operation": "keyvault.get_secret", "action": "explode"},
        {"operation": "keyvault.get_secret", "count": 0},
        {"operation": "keyvault.get_secret", "retryAfter": -1},
    ],
)
def test_invalid_faults_are_rejected_and_nothing_is_added(emulator, body):
    with pytest.raises(ControlError) as raised:
        emulator.control._call("POST", "/faults", body)
    assert raised.value.status == 400
    assert emulator.control.faults() == []


def test_a_fault_with_a_path_suffix_hits_only_that_secret(fresh_emulator):
    """One secret's writes fail (e.g. the pointer) while every other secret's succeed."""
    client = primed_secret_client(fresh_emulator, retry_total=0)
    fresh_emulator.control.add_fault(
        "keyvault.set_secret", status=503, count=1, path_suffix="/secrets/doomed"
    )
    assert client.set_secret("other", "v").value == "v"  # not this one: the fault is still armed
    with pytest.raises(HttpResponseError) as failed:
        client.set_secret("doomed", "v")
    assert failed.value.status_code == 503
    assert client.set_secret("doomed", "v").value == "v"  # count 1: used up
    with pytest.raises(ControlError):
        fresh_emulator.control.add_fault("keyvault.set_secret", status=503, path_suffix="")
