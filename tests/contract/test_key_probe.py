"""KeyProbe contract: testkit.fakes.FakeProbe vs shared.probe.DataPlaneProbe (emulator data plane).

Only ``openai/models`` on AIServices/OpenAI accounts: the emulator's data-plane routing for other kinds
is being reworked."""

from __future__ import annotations

import pytest

from rotation.model import SecretValue, Slot
from rotation.ports import ProbeResult

from .conftest import Backend


@pytest.mark.parametrize("kind", ["AIServices", "OpenAI"])
def test_live_keys_are_accepted_and_a_regenerated_one_is_refused(backend: Backend, kind: str) -> None:
    resource_id = backend.add_account(kind=kind)
    account = backend.keys.get_account(resource_id)
    assert account.endpoint is not None
    before = backend.keys.list_keys(resource_id)
    for slot in Slot:
        assert backend.probe.probe(account.endpoint, account.kind, before.of(slot)) is ProbeResult.ACCEPTED
    backend.keys.regenerate_key(resource_id, Slot.KEY1)
    after = backend.keys.list_keys(resource_id)
    assert backend.probe.probe(account.endpoint, account.kind, before.key1) is ProbeResult.REFUSED
    assert backend.probe.probe(account.endpoint, account.kind, after.key1) is ProbeResult.ACCEPTED
    assert backend.probe.probe(account.endpoint, account.kind, before.key2) is ProbeResult.ACCEPTED


def test_a_key_that_was_never_issued_is_refused(backend: Backend) -> None:
    resource_id = backend.add_account()
    account = backend.keys.get_account(resource_id)
    assert account.endpoint is not None
    refused = backend.probe.probe(account.endpoint, account.kind, SecretValue("0" * 32))
    assert refused is ProbeResult.REFUSED
