"""KeyService contract: testkit.fakes.FakeKeys vs shared.arm.CognitiveServicesKeys (emulator ARM)."""

from __future__ import annotations

import pytest

from rotation.errors import AzureRequestRejected, KeylessAccount
from rotation.model import Slot

from .conftest import Backend, contract_resource_id


@pytest.mark.parametrize("kind", ["AIServices", "OpenAI", "TextAnalytics"])
def test_get_account_reports_kind_endpoint_and_local_auth(backend: Backend, kind: str) -> None:
    resource_id = backend.add_account(kind=kind)
    account = backend.keys.get_account(resource_id)
    assert account.resource_id == resource_id
    assert account.kind == kind
    assert account.endpoint is not None
    assert account.endpoint.startswith("https://") and account.endpoint.endswith("/")
    assert account.disable_local_auth is False


def test_list_keys_returns_two_different_keys_and_the_same_ones_again(backend: Backend) -> None:
    resource_id = backend.add_account()
    keys = backend.keys.list_keys(resource_id)
    assert keys.key1.reveal() and keys.key2.reveal() and keys.key1.reveal() != keys.key2.reveal()
    again = backend.keys.list_keys(resource_id)
    assert (again.key1.reveal(), again.key2.reveal()) == (keys.key1.reveal(), keys.key2.reveal())
    assert keys.of(Slot.KEY1) == keys.key1 and keys.of(Slot.KEY2) == keys.key2


def test_resource_ids_are_case_insensitive(backend: Backend) -> None:
    resource_id = backend.add_account()
    assert backend.keys.list_keys(resource_id.upper()).key1 == backend.keys.list_keys(resource_id).key1


@pytest.mark.parametrize("slot", list(Slot))
def test_regenerate_key_changes_exactly_that_key(backend: Backend, slot: Slot) -> None:
    resource_id = backend.add_account()
    before = backend.keys.list_keys(resource_id)
    answered = backend.keys.regenerate_key(resource_id, slot)
    after = backend.keys.list_keys(resource_id)
    assert answered == after  # sent once: the answer carries both keys as the service now has them
    other = Slot.KEY2 if slot is Slot.KEY1 else Slot.KEY1
    assert after.of(slot).reveal() not in (before.key1.reveal(), before.key2.reveal())
    assert after.of(other) == before.of(other)


def test_a_keyless_account_has_no_keys_to_list_or_regenerate(backend: Backend) -> None:
    resource_id = backend.add_account(disable_local_auth=True)
    assert backend.keys.get_account(resource_id).disable_local_auth is True
    with pytest.raises(KeylessAccount):
        backend.keys.list_keys(resource_id)
    with pytest.raises(KeylessAccount):
        backend.keys.regenerate_key(resource_id, Slot.KEY1)


def test_an_unknown_account_is_rejected(backend: Backend) -> None:
    missing = contract_resource_id("nosuchaccount")
    with pytest.raises(AzureRequestRejected):
        backend.keys.get_account(missing)
    with pytest.raises(AzureRequestRejected):
        backend.keys.list_keys(missing)
    with pytest.raises(AzureRequestRejected):
        backend.keys.regenerate_key(missing, Slot.KEY1)
