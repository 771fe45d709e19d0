"""Shared fixtures: the local Azure emulator and Azurite, started on free loopback ports.

- ``emulator`` (session): one emulator for the whole run, seeded with the demo account. Tests that only
  add their own accounts/secrets (unique names) use it as is; tests that change global behaviour (faults,
  latency, clock, propagation, throttling) must either use ``fresh_emulator`` or call
  ``emulator.control.reset()``/``clear_faults()`` in a finally block.
- ``fresh_emulator`` (function): a private emulator process for tests that mutate global things.
- ``azurite`` (session): Azurite tables + queues; ``.connection_string``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.support.azurite import AzuriteProcess
from tests.support.emulator import DEMO_ACCOUNT_ID, EmulatorProcess


@pytest.fixture(scope="session")
def emulator() -> Iterator[EmulatorProcess]:
    with EmulatorProcess(accounts=[DEMO_ACCOUNT_ID]) as running:
        yield running


@pytest.fixture
def fresh_emulator() -> Iterator[EmulatorProcess]:
    with EmulatorProcess(accounts=[DEMO_ACCOUNT_ID]) as running:
        yield running


@pytest.fixture(scope="session")
def azurite() -> Iterator[AzuriteProcess]:
    with AzuriteProcess() as running:
        yield running


@pytest.fixture
def unique_name() -> str:
    """A name no other test uses (Key Vault secrets, accounts, tables) on the shared emulator."""
    return "t" + uuid.uuid4().hex[:12]
