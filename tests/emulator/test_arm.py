"""ARM Cognitive Services accounts through the real CognitiveServicesManagementClient."""

from __future__ import annotations

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError

from tests.emulator.conftest import VAULT_SCOPE, arm_scope, token_for

SUBSCRIPTION = "11111111-2222-3333-4444-555555555555"


def account_id(name: str, group: str = "rg-test", subscription: str = SUBSCRIPTION) -> str:
    return (
        f"/subscriptions/{subscription}/resourceGroups/{group}"
        f"/providers/Microsoft.CognitiveServices/accounts/{name}"
    )


@pytest.fixture
def account(emulator, unique_name):
    emulator.control.add_account(account_id(unique_name), kind="OpenAI")
    return unique_name


def test_get_account_has_the_realistic_envelope(emulator, account):
    client = emulator.arm_client(SUBSCRIPTION)
    got = client.accounts.get("rg-test", account)
    assert got.id == account_id(account)
    assert got.name == account and got.type == "Microsoft.CognitiveServices/accounts"
    assert got.kind == "OpenAI" and got.location == "eastus" and got.sku.name == "S0"
    assert got.properties.provisioning_state == "Succeeded"
    assert got.properties.endpoint == emulator.dataplane_url(account)
    assert got.properties.disable_local_auth is False


def test_list_keys_and_regenerate_each_slot(emulator, account):
    client = emulator.arm_client(SUBSCRIPTION)
    before = client.accounts.list_keys("rg-test", account)
    assert len(before.key1) == 32 and before.key1 != before.key2
    after1 = client.accounts.regenerate_key("rg-test", account, "Key1")
    assert after1.key1 != before.key1 and after1.key2 == before.key2
    after2 = client.accounts.regenerate_key("rg-test", account, "Key2")
    assert after2.key1 == after1.key1 and after2.key2 != before.key2
    listed = client.accounts.list_keys("rg-test", account)
    assert (listed.key1, listed.key2) == (after2.key1, after2.key2)


def test_bad_key_name_is_bad_request_and_changes_nothing(emulator, account):
    client = emulator.arm_client(SUBSCRIPTION)
    before = client.accounts.list_keys("rg-test", account)
    with pytest.raises(HttpResponseError) as raised:
        client.accounts.regenerate_key("rg-test", account, "Key3")
    assert raised.value.status_code == 400 and raised.value.error.code == "BadRequest"
    after = client.accounts.list_keys("rg-test", account)
    assert (after.key1, after.key2) == (before.key1, before.key2)


def test_unknown_account_is_resource_not_found(emulator, unique_name):
    client = emulator.arm_client(SUBSCRIPTION)
    for call in (
        lambda: client.accounts.get("rg-test", unique_name),
        lambda: client.accounts.list_keys("rg-test", unique_name),
        lambda: client.accounts.regenerate_key("rg-test", unique_name, "Key1"),
    ):
        with pytest.raises(ResourceNotFoundError) as raised:
            call()
        assert raised.value.error.code == "ResourceNotFound"


def test_disable_local_auth_refuses_keys(emulator, unique_name):
    emulator.control.add_account(account_id(unique_name), disable_local_auth=True)
    client = emulator.arm_client(SUBSCRIPTION)
    assert client.accounts.get("rg-test", unique_name).properties.disable_local_auth is True
    with pytest.raises(HttpResponseError) as raised:
        client.accounts.list_keys("rg-test", unique_name)
    assert raised.value.status_code == 400 and raised.value.error.code == "BadRequest"
    assert raised.value.error.message == "Failed to list key. disableLocalAuth is set to be true"
    with pytest.raises(HttpResponseError):
        client.accounts.regenerate_key("rg-test", unique_name, "Key1")
    emulator.control.set_disable_local_auth(unique_name, False)
    assert client.accounts.list_keys("rg-test", unique_name).key1


def test_missing_invalid_and_wrong_audience_tokens(emulator, account, http):
    path = account_id(account) + "/listKeys"
    params = {"api-version": "2025-09-01"}
    missing = http.post(path, params=params)
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "AuthenticationFailed"
    assert "WWW-Authenticate" in missing.headers
    invalid = http.post(path, params=params, headers={"Authorization": "Bearer not-a-token"})
    assert invalid.status_code == 401 and invalid.json()["error"]["code"] == "InvalidAuthenticationToken"
    vault_token = token_for(emulator, VAULT_SCOPE)
    wrong = http.post(path, params=params, headers={"Authorization": f"Bearer {vault_token}"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "InvalidAuthenticationTokenAudience"
    assert "key1" not in missing.text + invalid.text + wrong.text


def test_sdk_without_a_valid_token_raises_client_authentication_error(emulator, account):
    class VaultTokenOnly:
        def __init__(self, inner):
            self.inner = inner

        def get_token(self, *scopes, **kwargs):
            return self.inner.get_token(VAULT_SCOPE, **kwargs)

    client = emulator.arm_client(SUBSCRIPTION, credential=VaultTokenOnly(emulator.credential()))
    with pytest.raises(ClientAuthenticationError):
        client.accounts.list_keys("rg-test", account)


def test_api_version_is_required_and_rate_limit_headers_are_sent(emulator, account, http):
    headers = {"Authorization": f"Bearer {token_for(emulator, arm_scope(emulator))}"}
    missing = http.get(account_id(account), headers=headers)
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "MissingApiVersionParameter"
    read = http.get(account_id(account), params={"api-version": "2025-09-01"}, headers=headers)
    assert int(read.headers["x-ms-ratelimit-remaining-subscription-reads"]) >= 0
    write = http.post(
        account_id(account) + "/listKeys", params={"api-version": "2025-09-01"}, headers=headers
    )
    first = int(write.headers["x-ms-ratelimit-remaining-subscription-writes"])
    second = http.post(
        account_id(account) + "/listKeys", params={"api-version": "2025-09-01"}, headers=headers
    )
    assert int(second.headers["x-ms-ratelimit-remaining-subscription-writes"]) <= first


def test_paths_are_case_insensitive_like_arm(emulator, account, http):
    headers = {"Authorization": f"Bearer {token_for(emulator, arm_scope(emulator))}"}
    path = (
        account_id(account)
        .replace("resourceGroups", "resourcegroups")
        .replace("Microsoft.CognitiveServices", "microsoft.cognitiveservices")
        + "/listkeys"
    )
    response = http.post(path, params={"api-version": "2025-09-01"}, headers=headers)
    assert response.status_code == 200 and set(response.json()) == {"key1", "key2"}


def test_many_accounts_are_independent(emulator, unique_name):
    names = [f"{unique_name}{i}" for i in range(3)]
    for name in names:
        emulator.control.add_account(account_id(name, group="rg-many"))
    client = emulator.arm_client(SUBSCRIPTION)
    keys = {name: client.accounts.list_keys("rg-many", name).key1 for name in names}
    client.accounts.regenerate_key("rg-many", names[0], "Key1")
    assert client.accounts.list_keys("rg-many", names[1]).key1 == keys[names[1]]
    assert client.accounts.list_keys("rg-many", names[0]).key1 != keys[names[0]]
    assert len(set(keys.values())) == 3
