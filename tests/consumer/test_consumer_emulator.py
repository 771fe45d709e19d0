"""Consumer library against the emulator: real SecretClient, real ARM regenerations, real HTTPS requests.

The vault layout and write order are those of docs/CONTRACTS.md (driven by ``VaultRotation``); the data
plane really rejects a regenerated key, so a request only succeeds with a current key.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time

import httpx
import pytest
import requests
from azure.core import PipelineClient
from azure.core.credentials import AzureKeyCredential
from azure.core.pipeline.policies import AzureKeyCredentialPolicy, HeadersPolicy, RetryPolicy
from azure.core.pipeline.transport import RequestsTransport
from azure.core.rest import HttpRequest

from keyrotation_consumer import (
    KeyUnavailableError,
    KeyVaultReadError,
    Layout,
    RotatingKey,
    SecretNotFoundError,
)

from .traffic import Traffic
from .vault_rotation import VaultRotation, other

SUBSCRIPTION_HEADER = "Ocp-Apim-Subscription-Key"
# A documented, authenticated route: the endpoint root and made-up paths answer 404 whatever the key.
CHAT = "openai/deployments/gpt/chat/completions"


@pytest.fixture
def rotation(emulator):
    rotation = VaultRotation.create(emulator)
    yield rotation
    rotation.close()


@pytest.fixture
def consumer_secrets(emulator):
    """The application's own SecretClient (one per process in real life)."""
    client = emulator.secret_client()
    yield client
    client.close()


def tls(emulator) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=emulator.ca_bundle)


def dataplane(emulator, rotation: VaultRotation, path: str = "openai/models") -> str:
    return emulator.dataplane_url(rotation.account) + path


def requests_sender(emulator, rotation: VaultRotation, key: RotatingKey):
    def make():
        session = requests.Session()
        session.auth = key.requests_auth()
        url = dataplane(emulator, rotation, CHAT)
        # verify per request: requests lets REQUESTS_CA_BUNDLE from the environment override session.verify.
        # A body makes the 401 retry prove that the request is replayed whole.
        return lambda: session.post(url, json={"messages": [{"role": "user", "content": "hi"}]},
                                    verify=emulator.ca_bundle, timeout=30).status_code
    return make


def httpx_sender(emulator, rotation: VaultRotation, key: RotatingKey):
    def make():
        client = httpx.Client(auth=key.httpx_auth(header=SUBSCRIPTION_HEADER), verify=tls(emulator),
                              timeout=30)
        url = dataplane(emulator, rotation)
        return lambda: client.get(url).status_code
    return make


def mixed_traffic(emulator, rotation, key, threads_per_client: int = 4) -> tuple[Traffic, Traffic]:
    return (Traffic(requests_sender(emulator, rotation, key), threads_per_client),
            Traffic(httpx_sender(emulator, rotation, key), threads_per_client))


def wait_for_requests(traffic: Traffic, more: int, timeout: float = 20.0) -> None:
    target = traffic.total() + more
    deadline = time.monotonic() + timeout
    while traffic.total() < target:
        assert time.monotonic() < deadline, "traffic stalled"
        time.sleep(0.01)


def get_secret_calls(emulator) -> int:
    return emulator.control.calls().get("keyvault.get_secret", 0)


def test_rotations_under_traffic_follow_the_ttl_with_zero_failures(emulator, rotation, consumer_secrets):
    ttl = 0.25
    key = RotatingKey.from_secret_client(consumer_secrets, rotation.prefix, ttl=ttl)
    reads_before = get_secret_calls(emulator)
    started = time.monotonic()
    by_requests, by_httpx = mixed_traffic(emulator, rotation, key)
    with by_requests, by_httpx:
        for _ in range(3):
            wait_for_requests(by_requests, 10)
            wait_for_requests(by_httpx, 10)
            rotation.rotate(drain_seconds=5 * ttl)
        wait_for_requests(by_requests, 10)
        wait_for_requests(by_httpx, 10)
    elapsed = time.monotonic() - started

    assert set(by_requests.outcomes) == {"200"}, by_requests.outcomes
    assert set(by_httpx.outcomes) == {"200"}, by_httpx.outcomes
    assert by_requests.total() >= 40 and by_httpx.total() >= 40
    stats = key.stats
    assert stats.unauthorized_refreshes == 0, "with TTL well below the drain no request ever sees a 401"
    # One process, 8 threads: at most one Key Vault read per TTL period, as counted by Key Vault itself.
    assert get_secret_calls(emulator) - reads_before == stats.key_vault_reads
    assert 4 <= stats.key_vault_reads <= elapsed / ttl + 1
    time.sleep(ttl)
    assert key.current().slot == rotation.active
    assert key.get() == rotation.service_keys()[rotation.active]


def test_emergency_rotations_without_drain_recover_by_401_with_zero_failures(emulator, rotation,
                                                                              consumer_secrets):
    key = RotatingKey.from_secret_client(consumer_secrets, rotation.prefix, ttl=600)
    key.get()
    cycles = 4
    by_requests, by_httpx = mixed_traffic(emulator, rotation, key)
    with by_requests, by_httpx:
        for _ in range(cycles):
            wait_for_requests(by_requests, 10)
            wait_for_requests(by_httpx, 10)
            rotation.rotate(drain_seconds=0)
        wait_for_requests(by_requests, 10)
        wait_for_requests(by_httpx, 10)

    assert set(by_requests.outcomes) == {"200"}, by_requests.outcomes
    assert set(by_httpx.outcomes) == {"200"}, by_httpx.outcomes
    stats = key.stats
    # Each revoked key costs one shared re-read of P-active, whatever the number of threads hitting 401.
    assert 1 <= stats.unauthorized_refreshes <= cycles
    assert stats.key_vault_reads == 1 + stats.unauthorized_refreshes
    assert stats.other_slot_fallbacks == 0
    assert key.get() == rotation.service_keys()[rotation.active]


def regenerate_active_behind_the_vaults_back(rotation: VaultRotation) -> tuple[str, str]:
    """Regenerate the active slot at the service only: P-active (and the pointer) still name it."""
    stale = rotation.service_keys()[rotation.active]
    rotation.arm.accounts.regenerate_key("rg-consumer", rotation.account, rotation.active.capitalize())
    return stale, rotation.service_keys()[other(rotation.active)]


def test_pointer_not_moved_yet_requests_retry_with_the_other_slot(emulator, rotation, consumer_secrets):
    key = RotatingKey.from_secret_client(consumer_secrets, rotation.prefix)
    assert key.current().slot == "key1"
    stale, other_value = regenerate_active_behind_the_vaults_back(rotation)

    response = requests.post(dataplane(emulator, rotation, CHAT), data=b"payload", auth=key.requests_auth(),
                             verify=emulator.ca_bundle, timeout=30)

    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [401]
    assert response.history[0].request.headers["api-key"] == stale
    assert response.request.headers["api-key"] == other_value
    assert key.current().slot == "key2"
    assert key.stats.other_slot_fallbacks == 1
    # Later requests use the other slot directly, with no new 401 and no new read.
    reads = key.stats.key_vault_reads
    again = requests.get(dataplane(emulator, rotation), auth=key.requests_auth(), verify=emulator.ca_bundle,
                         timeout=30)
    assert again.status_code == 200 and again.history == []
    assert key.stats.key_vault_reads == reads


def test_pointer_not_moved_yet_httpx_retries_with_the_other_slot(emulator, rotation, consumer_secrets):
    key = RotatingKey.from_secret_client(consumer_secrets, rotation.prefix)
    key.get()
    stale, other_value = regenerate_active_behind_the_vaults_back(rotation)

    with httpx.Client(auth=key.httpx_auth(header=SUBSCRIPTION_HEADER), verify=tls(emulator)) as client:
        response = client.post(dataplane(emulator, rotation, CHAT), content=b"payload")

    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [401]
    # httpx replays the same Request object, so only the final header can be checked on it.
    assert response.request.headers[SUBSCRIPTION_HEADER] == other_value
    assert key.stats.other_slot_fallbacks == 1
    revoked = httpx.get(dataplane(emulator, rotation), headers={SUBSCRIPTION_HEADER: stale},
                        verify=tls(emulator))
    assert revoked.status_code == 401


def test_httpx_async_client_recovers_from_an_emergency_rotation(emulator, rotation, consumer_secrets):
    key = RotatingKey.from_secret_client(consumer_secrets, rotation.prefix, ttl=600)
    url = dataplane(emulator, rotation)

    async def burst() -> list[int]:
        async with httpx.AsyncClient(auth=key.httpx_auth(), verify=tls(emulator)) as client:
            responses = await asyncio.gather(*(client.get(url) for _ in range(20)))
        return [r.status_code for r in responses]

    assert asyncio.run(burst()) == [200] * 20
    rotation.rotate(drain_seconds=0)
    assert asyncio.run(burst()) == [200] * 20
    # 20 concurrent 401s, one shared re-read of P-active.
    assert key.stats.unauthorized_refreshes == 1
    assert key.stats.key_vault_reads == 2


def pipeline_client(emulator, rotation, *policies) -> PipelineClient:
    return PipelineClient(
        base_url=emulator.dataplane_url(rotation.account),
        policies=[HeadersPolicy(), RetryPolicy(retry_total=0), *policies],
        transport=RequestsTransport(connection_verify=emulator.ca_bundle),
    )


def send_models(client: PipelineClient) -> int:
    return client.send_request(HttpRequest("GET", client.format_url("openai/models"))).status_code


def test_bound_azure_key_credential_is_updated_in_place(emulator, rotation, consumer_secrets):
    ttl = 0.3
    key = RotatingKey.from_secret_client(consumer_secrets, rotation.prefix, ttl=ttl)
    credential = AzureKeyCredential("not-yet-known")
    assert key.bind(credential) is credential
    bound_client = pipeline_client(emulator, rotation, AzureKeyCredentialPolicy(credential, "api-key"))
    unbound = AzureKeyCredential(key.get())
    unbound_client = pipeline_client(emulator, rotation, AzureKeyCredentialPolicy(unbound, "api-key"))
    live_client = pipeline_client(emulator, rotation,
                                  AzureKeyCredentialPolicy(key.azure_key_credential(), "api-key"))
    assert send_models(bound_client) == send_models(unbound_client) == send_models(live_client) == 200

    old = rotation.active
    new_value = rotation.regenerate(other(old))
    rotation._swap_to(other(old), new_value)
    time.sleep(ttl)
    key.get()  # the application's own traffic refreshes the cache, and with it the bound credential
    rotation.regenerate(old)

    assert credential.key == new_value
    assert send_models(bound_client) == 200
    assert send_models(live_client) == 200
    assert send_models(unbound_client) == 401, "the old key really is revoked"


def test_pipeline_policy_retries_a_401_for_a_static_credential_client(emulator, rotation, consumer_secrets):
    key = RotatingKey.from_secret_client(consumer_secrets, rotation.prefix, ttl=600)
    stale_credential = AzureKeyCredential(key.get())
    client = pipeline_client(emulator, rotation, AzureKeyCredentialPolicy(stale_credential, "api-key"),
                             key.azure_policy())
    assert send_models(client) == 200

    rotation.rotate(drain_seconds=0)

    assert send_models(client) == 200
    assert key.stats.unauthorized_refreshes == 1
    assert key.get() == rotation.service_keys()[rotation.active]


def test_key_vault_outage_keeps_serving_the_cached_key(emulator, rotation, caplog):
    caplog.set_level(logging.INFO, logger="keyrotation_consumer")
    # No SDK retries, so each failing refresh is one 503 and the test stays fast.
    secrets = emulator.secret_client(retry_total=0)
    ttl = 0.2
    key = RotatingKey.from_secret_client(secrets, rotation.prefix, ttl=ttl, retry_interval=0.2)
    key.get()
    emulator.control.add_fault("keyvault.get_secret", status=503, count=1000)
    try:
        with Traffic(requests_sender(emulator, rotation, key), 4) as traffic:
            time.sleep(5 * ttl)
            wait_for_requests(traffic, 10)
        failures = key.stats.refresh_failures
    finally:
        emulator.control.clear_faults()
    assert set(traffic.outcomes) == {"200"}, traffic.outcomes
    assert failures >= 2
    assert "serving the cached key" in caplog.text and "status=503" in caplog.text

    time.sleep(ttl)
    refreshes = key.stats.refreshes
    assert key.get() == rotation.service_keys()[rotation.active]
    assert key.stats.refreshes == refreshes + 1, "refreshes again once Key Vault answers"
    for value in rotation.service_keys().values():
        assert value not in caplog.text
    secrets.close()


def test_pointer_layout_reads_pointer_then_slot_from_the_real_vault(emulator, rotation, consumer_secrets):
    key = RotatingKey.from_secret_client(consumer_secrets, rotation.prefix, layout=Layout.POINTER, ttl=600)
    reads_before = get_secret_calls(emulator)

    first = key.current()
    assert (first.slot, first.secret_name) == ("key1", f"{rotation.prefix}-key1")
    assert get_secret_calls(emulator) - reads_before == key.stats.key_vault_reads == 2

    rotation.rotate(drain_seconds=0)
    response = requests.get(dataplane(emulator, rotation), auth=key.requests_auth(),
                            verify=emulator.ca_bundle, timeout=30)
    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [401]
    assert key.current().slot == "key2"


def test_real_key_vault_errors_become_library_errors(emulator, consumer_secrets, unique_name):
    missing = RotatingKey.from_secret_client(consumer_secrets, unique_name)
    with pytest.raises(KeyUnavailableError) as raised:
        missing.get()
    cause = raised.value.__cause__
    assert isinstance(cause, SecretNotFoundError)
    assert (cause.secret_name, cause.status_code, cause.error_code) == (f"{unique_name}-active", 404,
                                                                        "SecretNotFound")

    consumer_secrets.set_secret(f"{unique_name}-active", "value-of-a-disabled-secret", enabled=False)
    with pytest.raises(KeyUnavailableError) as raised:
        missing.get()
    cause = raised.value.__cause__
    assert isinstance(cause, KeyVaultReadError) and not isinstance(cause, SecretNotFoundError)
    assert cause.status_code == 403
    assert "value-of-a-disabled-secret" not in str(raised.value)
