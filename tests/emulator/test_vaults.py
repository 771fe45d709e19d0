"""Several vaults in one emulator (real SecretClient): each added vault has its own URL (its own port),
its own secrets and its own throttling windows, and can deny the identity; bad control input changes
nothing; a ``--state-file`` keeps an added vault's secrets across a restart."""

from __future__ import annotations

from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.keyvault.secrets import KeyVaultSecretIdentifier

from emulator.client.control_client import ControlError
from emulator.client.launcher import EmulatorProcess


def test_each_vault_has_its_own_url_secrets_and_ids(fresh_emulator: EmulatorProcess) -> None:
    control = fresh_emulator.control
    url_a = control.add_vault("kv-fleet-a")
    url_b = control.add_vault("kv-fleet-b")
    assert len({url_a, url_b, fresh_emulator.vault_url}) == 3
    with (
        fresh_emulator.secret_client(vault_url=url_a) as vault_a,
        fresh_emulator.secret_client(vault_url=url_b) as vault_b,
        fresh_emulator.secret_client() as default,
    ):
        written = vault_a.set_secret("shared-name", "in-a")
        vault_b.set_secret("shared-name", "in-b")
        assert KeyVaultSecretIdentifier(written.id).vault_url == url_a.rstrip("/")
        assert vault_a.get_secret("shared-name").value == "in-a"
        assert vault_b.get_secret("shared-name").value == "in-b"
        assert [p.name for p in vault_a.list_properties_of_secrets()] == ["shared-name"]
        with pytest.raises(ResourceNotFoundError):
            default.get_secret("shared-name")
    listed = {v["name"]: v["url"] for v in control.vaults()}
    assert listed == {"kv-emulator": fresh_emulator.vault_url, "kv-fleet-a": url_a, "kv-fleet-b": url_b}


def test_throttling_windows_are_per_vault(fresh_emulator: EmulatorProcess) -> None:
    control = fresh_emulator.control
    control.set_throttling(vaultSecretWrites=2, vaultWindowSeconds=60)
    url_a = control.add_vault("kv-fleet-a")
    with (
        fresh_emulator.secret_client(vault_url=url_a, retry_total=0) as vault_a,
        fresh_emulator.secret_client(retry_total=0) as default,
    ):
        for i in range(2):
            vault_a.set_secret(f"s{i}", "v")
        with pytest.raises(HttpResponseError) as throttled:
            vault_a.set_secret("s2", "v")
        assert throttled.value.status_code == 429 and throttled.value.error is not None
        assert throttled.value.error.code == "Throttled"
        # the default vault's window is untouched by vault A's writes
        for i in range(2):
            default.set_secret(f"s{i}", "v")
    assert control.calls_and_throttles()["throttled"] == {"keyvault": 1}


def test_a_vault_that_denies_the_identity_answers_403_forbidden_by_rbac(
    fresh_emulator: EmulatorProcess,
) -> None:
    control = fresh_emulator.control
    url = control.add_vault("kv-locked", identity_denied=True)
    with fresh_emulator.secret_client(vault_url=url, retry_total=0) as vault:
        with pytest.raises(HttpResponseError) as denied:
            vault.set_secret("s", "v")
        assert denied.value.status_code == 403 and denied.value.error is not None
        assert denied.value.error.code == "Forbidden"
        assert "kv-locked" in str(denied.value.message)
        control.set_vault_access("kv-locked", identity_denied=False)
        assert vault.set_secret("s", "v").name == "s"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"name": "a"}, "3-24"),
        ({"name": "9starts-with-digit"}, "3-24"),
        ({"name": "double--hyphen"}, "3-24"),
        ({"name": "kv-emulator"}, "already exists"),
        ({"name": "kv-ok", "identityDenied": "yes"}, "identityDenied"),
        ({"name": "kv-ok", "region": "eastus"}, "body must be"),
    ],
)
def test_bad_vault_definitions_are_refused_and_change_nothing(
    emulator: EmulatorProcess, body: dict[str, object], fragment: str
) -> None:
    before = emulator.control.vaults()
    with pytest.raises(ControlError) as refused:
        emulator.control._call("POST", "/vaults", body)
    assert refused.value.status == 400 and fragment in refused.value.body
    assert emulator.control.vaults() == before


def test_patching_an_unknown_vault_is_404(emulator: EmulatorProcess) -> None:
    with pytest.raises(ControlError) as missing:
        emulator.control.set_vault_access("kv-nowhere", identity_denied=True)
    assert missing.value.status == 404 and "POST /_emulator/vaults" in missing.value.body


def test_reset_stops_added_vaults_and_state_file_restores_them(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    with EmulatorProcess(state_file=state_file, vaults=["kv-kept"]) as first:
        with first.secret_client(vault_url=first.vault_urls["kv-kept"]) as vault:
            vault.set_secret("kept", "value-kept")
    with EmulatorProcess(state_file=state_file) as second:
        url = {v["name"]: v["url"] for v in second.control.vaults()}["kv-kept"]
        with second.secret_client(vault_url=url) as vault:
            assert vault.get_secret("kept").value == "value-kept"
        second.control.reset()
        assert [v["name"] for v in second.control.vaults()] == ["kv-emulator"]
