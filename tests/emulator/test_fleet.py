"""Fleets in the emulator: tags, same-named accounts with their own subdomains, ARM lists with nextLink
paging (real CognitiveServicesManagementClient), the subscription list, and Key Vault's per-vault limits
(real SecretClient). Each test has its own emulator (limits and page size are emulator-wide)."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError

from emulator.client.control_client import ControlError
from emulator.client.launcher import EmulatorProcess
from tests.emulator.conftest import arm_scope, token_for

SUB1 = "bbbbbbbb-0000-0000-0000-000000000001"
SUB2 = "bbbbbbbb-0000-0000-0000-000000000002"


def rid(sub: str, group: str, name: str) -> str:
    provider = "providers/Microsoft.CognitiveServices/accounts"
    return f"/subscriptions/{sub}/resourceGroups/{group}/{provider}/{name}"


def test_accounts_list_by_subscription_and_group_page_with_next_link_and_carry_tags(
    fresh_emulator: EmulatorProcess,
) -> None:
    control = fresh_emulator.control
    control.set_throttling(armListPageSize=2)
    for i in range(5):
        control.add_account(rid(SUB1, "rg-a" if i < 3 else "rg-b", f"acct{i}"), tags={"n": str(i)})
    control.add_account(rid(SUB2, "rg-a", "elsewhere"))
    client = fresh_emulator.arm_client(SUB1)
    listed = list(client.accounts.list())
    assert sorted(a.name for a in listed) == [f"acct{i}" for i in range(5)]
    assert {a.name: a.tags for a in listed}["acct3"] == {"n": "3"}
    assert sorted(a.name for a in client.accounts.list_by_resource_group("rg-b")) == ["acct3", "acct4"]
    with fresh_emulator.http_client() as http:
        headers = {"Authorization": f"Bearer {token_for(fresh_emulator, arm_scope(fresh_emulator))}"}
        url = f"/subscriptions/{SUB1}/providers/Microsoft.CognitiveServices/accounts"
        first = http.get(url, params={"api-version": "2025-09-01"}, headers=headers).json()
        assert len(first["value"]) == 2 and first["nextLink"].startswith("https://127.0.0.1:")
        listed_subs, link = [], "/subscriptions?api-version=2022-12-01"
        while link:  # paged like the accounts (3 subscriptions: the vault's and two with accounts)
            page = http.get(link, headers=headers).json()
            listed_subs += page["value"]
            link = page.get("nextLink")
        ids = [s["subscriptionId"] for s in listed_subs]
        assert len(ids) == 3 and {SUB1, SUB2} <= set(ids)
        assert all(s["state"] == "Enabled" for s in listed_subs)
        missing = http.get(
            f"/subscriptions/{SUB1}/resourceGroups/rg-none/providers/Microsoft.CognitiveServices/accounts",
            params={"api-version": "2025-09-01"},
            headers=headers,
        )
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "ResourceGroupNotFound"


def test_same_named_accounts_have_their_own_subdomains_and_data_planes(
    fresh_emulator: EmulatorProcess,
) -> None:
    control = fresh_emulator.control
    first = control.add_account(rid(SUB1, "rg-a", "twin"))
    with pytest.raises(ControlError) as taken:
        control.add_account(rid(SUB2, "rg-a", "twin"))  # the subdomain "twin" is taken
    assert "customSubDomainName" in str(taken.value)
    second = control.add_account(rid(SUB2, "rg-a", "twin"), subdomain="twin-2")
    assert first["endpoint"] != second["endpoint"] and second["endpoint"].endswith("/accounts/twin-2/")
    one = fresh_emulator.arm_client(SUB1).accounts.list_keys("rg-a", "twin").key1
    two = fresh_emulator.arm_client(SUB2).accounts.list_keys("rg-a", "twin").key1
    with fresh_emulator.http_client() as http:
        models = "openai/models?api-version=2024-10-21"
        assert http.get(f"{second['endpoint']}{models}", headers={"api-key": two}).status_code == 200
        assert http.get(f"{second['endpoint']}{models}", headers={"api-key": one}).status_code == 401
    with pytest.raises(ControlError):
        control.set_tags(rid(SUB1, "rg-a", "twin"), {"bad/name": "x"})  # rejected, nothing changed
    control.set_tags(rid(SUB2, "rg-a", "twin"), {"key-rotation": "enabled"})
    tags = {a["resourceId"]: a["tags"] for a in control.accounts()}
    assert tags[rid(SUB1, "rg-a", "twin")] == {} and tags[rid(SUB2, "rg-a", "twin")] == {
        "key-rotation": "enabled"
    }
    control.delete_account(rid(SUB1, "rg-a", "twin"))
    with pytest.raises(HttpResponseError) as gone:
        fresh_emulator.arm_client(SUB1).accounts.get("rg-a", "twin")
    assert gone.value.status_code == 404


def test_key_vault_throttles_secret_writes_per_vault_with_azures_code_body_and_retry_after(
    fresh_emulator: EmulatorProcess,
) -> None:
    control = fresh_emulator.control
    control.set_throttling(vaultSecretWrites=3, vaultOtherTransactions=5, vaultWindowSeconds=60)
    with fresh_emulator.secret_client(retry_total=0) as vault:
        for i in range(3):
            vault.set_secret(f"s{i}", "v")
        with pytest.raises(HttpResponseError) as throttled:
            vault.set_secret("s3", "v")
        error = throttled.value
        assert error.status_code == 429 and error.error is not None and error.error.code == "Throttled"
        assert "VaultRequestTypeLimitReached" in str(error.message)
        assert int(error.response.headers["Retry-After"]) >= 1
        vault.get_secret("s0")  # reads have their own, larger limit
    assert control.calls_and_throttles()["throttled"] == {"keyvault": 1}
