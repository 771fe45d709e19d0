"""The emulator's account lookups are indexes (issue 17: a request must not cost more with more accounts):
they must stay right through every change — add, delete, regenerate, persistence — and answer over HTTPS
exactly as the scans did."""

from __future__ import annotations

import json

from emulator.state import Account, AccountTable, EmulatorState
from tests.emulator.test_arm import SUBSCRIPTION, account_id
from tests.emulator.test_dataplane import ISSUE_TOKEN, keys

ID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/"


def make(name: str, **fields: object) -> Account:
    return Account.create(ID + name, "AIServices", False, 0.0, **fields)  # type: ignore[arg-type]


def test_lookups_follow_add_delete_and_rekey() -> None:
    table = AccountTable()
    first, second = make("one"), make("two", subdomain="custom-two")
    table[first.resource_id.lower()] = first
    table[second.resource_id.lower()] = second
    assert table.by_subdomain("ONE") is first and table.by_subdomain("custom-two") is second
    assert table.by_subdomain("two") is None  # the custom subdomain, not the name, is the host
    old = first.key1
    table.rekey(first, "key1", "f" * 32)
    assert first.key1 == "f" * 32
    assert table.by_key(old) is None and table.by_key("f" * 32) is first
    assert table.by_key(first.key2) is first
    del table[first.resource_id.lower()]
    assert table.by_subdomain("one") is None and table.by_key(first.key2) is None
    assert table.by_key(second.key1) is second


def test_indexes_survive_the_state_file_round_trip() -> None:
    state = EmulatorState()
    account = make("persisted")
    state.accounts[account.resource_id.lower()] = account
    loaded = EmulatorState.from_json(json.loads(json.dumps(state.to_json())))
    assert loaded.account_by_subdomain("persisted") is not None
    assert loaded.accounts.by_key(account.key2) is loaded.accounts[account.resource_id.lower()]


def test_the_regional_host_follows_a_regenerate_and_a_delete(emulator, http, unique_name):
    emulator.control.add_account(account_id(unique_name), custom_subdomain=False)
    url = f"{emulator.base_url}/regional/eastus/{ISSUE_TOKEN}"
    before = keys(emulator, unique_name)
    emulator.arm_client(SUBSCRIPTION).accounts.regenerate_key("rg-test", unique_name, key_name="Key1")
    after = keys(emulator, unique_name)
    assert http.post(url, headers={"Ocp-Apim-Subscription-Key": before.key1}).status_code == 401
    assert http.post(url, headers={"Ocp-Apim-Subscription-Key": after.key1}).status_code == 200
    assert http.post(url, headers={"Ocp-Apim-Subscription-Key": after.key2}).status_code == 200
    emulator.control.delete_account(account_id(unique_name))
    assert http.post(url, headers={"Ocp-Apim-Subscription-Key": after.key2}).status_code == 401
