"""Helpers for the emulator's own tests: raw HTTPS with tokens, next to the real SDK clients."""

from __future__ import annotations

import pytest

from emulator.client.launcher import EmulatorProcess

VAULT_SCOPE = "https://vault.azure.net/.default"


def token_for(emu: EmulatorProcess, scope: str) -> str:
    with emu.credential() as credential:
        return str(credential.get_token(scope).token)


def arm_scope(emu: EmulatorProcess) -> str:
    return emu.env["ARM_ENDPOINT"] + "/.default"


def raw_client(emu: EmulatorProcess):
    return emu.http_client()


@pytest.fixture
def http(emulator: EmulatorProcess):
    with raw_client(emulator) as client:
        yield client
