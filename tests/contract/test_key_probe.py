"""KeyProbe contract: testkit.fakes.FakeProbe vs shared.azure.data_plane_probe.DataPlaneProbe (the emulator's
data plane, which routes like Azure's gateway: each kind gets its documented authenticated request)."""

from __future__ import annotations

import pytest

from rotation.model import SecretValue, Slot
from rotation.ports import AccountInfo, DataPlane, ProbeResult

from .conftest import Backend


def _plane(account: AccountInfo) -> DataPlane:
    assert account.endpoint is not None
    return DataPlane(account.endpoint, account.kind, account.location, account.custom_subdomain)


@pytest.mark.parametrize("kind", ["AIServices", "OpenAI", "TextAnalytics", "ContentSafety", "FormRecognizer"])
def test_live_keys_are_accepted_and_a_regenerated_one_is_refused(backend: Backend, kind: str) -> None:
    resource_id = backend.add_account(kind=kind)
    account = backend.keys.get_account(resource_id)
    assert account.endpoint is not None
    before = backend.keys.list_keys(resource_id)
    for slot in Slot:
        assert backend.probe.probe(_plane(account), before.of(slot)) is ProbeResult.ACCEPTED
    backend.keys.regenerate_key(resource_id, Slot.KEY1)
    after = backend.keys.list_keys(resource_id)
    assert backend.probe.probe(_plane(account), before.key1) is ProbeResult.REFUSED
    assert backend.probe.probe(_plane(account), after.key1) is ProbeResult.ACCEPTED
    assert backend.probe.probe(_plane(account), before.key2) is ProbeResult.ACCEPTED


def test_a_key_that_was_never_issued_is_refused(backend: Backend) -> None:
    resource_id = backend.add_account()
    account = backend.keys.get_account(resource_id)
    assert account.endpoint is not None
    refused = backend.probe.probe(_plane(account), SecretValue("0" * 32))
    assert refused is ProbeResult.REFUSED
