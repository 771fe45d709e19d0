"""``key-rotation-vault`` end to end: discovery puts targets in different vaults (the emulator serves one
port per vault), each target's secrets land in its own vault and nowhere else, and a vault the identity
cannot use or that does not exist fails that target only, with an error naming the vault and the fix, and
changes nothing (no key regenerated, no secret written anywhere)."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError

from emulator.client.azurite import AzuriteProcess
from emulator.client.launcher import EmulatorProcess
from tests.engine.test_discovery import ON, SUBS, rid, service_for, statuses

VAULTS = ("kv-group-a", "kv-group-b")


def closed_port_url() -> str:
    """A loopback URL nobody serves: what a vault that does not exist looks like from here."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"https://127.0.0.1:{sock.getsockname()[1]}/"


@pytest.fixture
def grouped(fresh_emulator: EmulatorProcess) -> dict[str, Any]:
    control = fresh_emulator.control
    urls = {name: control.add_vault(name) for name in VAULTS}
    urls["kv-locked"] = control.add_vault("kv-locked", identity_denied=True)
    urls["missing"] = closed_port_url()
    placement = {
        "a1": urls["kv-group-a"],
        "a2": urls["kv-group-a"],
        "b1": urls["kv-group-b"],
        "default": None,
        "locked": urls["kv-locked"],
        "missing": urls["missing"],
    }
    accounts = {}
    for name, vault in placement.items():
        resource_id = rid(SUBS[0], "rg-vaults", name)
        control.add_account(resource_id, tags={**ON, **({"key-rotation-vault": vault} if vault else {})})
        accounts[name] = resource_id
    return {"urls": urls, "accounts": accounts, "placement": placement}


def keys_of(emulator: EmulatorProcess, name: str) -> tuple[str, str]:
    keys = emulator.arm_client(SUBS[0]).accounts.list_keys("rg-vaults", name)
    return keys.key1, keys.key2


def names_in(emulator: EmulatorProcess, vault_url: str | None) -> set[str]:
    with emulator.secret_client(vault_url=vault_url) as vault:
        return {p.name for p in vault.list_properties_of_secrets()}


def test_each_target_s_secrets_land_in_the_vault_its_tag_names(
    fresh_emulator: EmulatorProcess,
    azurite: AzuriteProcess,
    monkeypatch: pytest.MonkeyPatch,
    grouped: dict[str, Any],
) -> None:
    service = service_for(fresh_emulator, azurite, monkeypatch)
    before = {name: keys_of(fresh_emulator, name) for name in ("locked", "missing")}
    summary = service.sweep()
    assert (summary.seen, summary.advanced, summary.failed) == (6, 4, 2)
    seen = statuses(service)
    prefixes = {name: seen[rid.lower()].secret_prefix for name, rid in grouped["accounts"].items()}
    expected: dict[str | None, set[str]] = {}
    for name in ("a1", "a2", "b1", "default"):
        vault = grouped["placement"][name]
        expected.setdefault(vault, set()).update(
            f"{prefixes[name]}-{suffix}" for suffix in ("key1", "key2", "active-key", "active")
        )
    # every vault holds exactly its own targets' four secrets
    for vault, names in expected.items():
        assert names_in(fresh_emulator, vault) == names
    with fresh_emulator.secret_client(vault_url=grouped["urls"]["kv-group-a"]) as vault_a:
        assert vault_a.get_secret(f"{prefixes['a1']}-active-key").value == "key1"
        with pytest.raises(ResourceNotFoundError):
            vault_a.get_secret(f"{prefixes['b1']}-active")
    # Nothing changed for the two targets whose vault cannot be used: same keys, no secrets anywhere.
    assert {name: keys_of(fresh_emulator, name) for name in ("locked", "missing")} == before
    fresh_emulator.control.set_vault_access("kv-locked", identity_denied=False)
    assert names_in(fresh_emulator, grouped["urls"]["kv-locked"]) == set()
    # Each failure names the vault, where its URL came from, and what to do; the target retries later.
    locked = seen[grouped["accounts"]["locked"].lower()]
    assert locked.last_error is not None and locked.last_error.startswith("AzureAccessDenied")
    assert grouped["urls"]["kv-locked"].rstrip("/") in locked.last_error
    assert "key-rotation-vault tag" in locked.last_error and "Key Vault Secrets Officer" in locked.last_error
    missing = seen[grouped["accounts"]["missing"].lower()]
    assert missing.last_error is not None and "not reachable" in missing.last_error
    assert grouped["urls"]["missing"].rstrip("/") in missing.last_error
    assert "key-rotation-vault tag" in missing.last_error
    assert locked.next_attempt_at is not None and missing.next_attempt_at is not None
