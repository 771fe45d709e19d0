"""SecretStore contract: testkit.fakes.FakeSecrets vs shared.keyvault.KeyVaultSecretStore (emulator)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rotation.errors import SecretDeleted
from rotation.model import SecretValue

from .conftest import Backend


def test_a_missing_secret_reads_as_none_and_has_no_versions(backend: Backend, unique_name: str) -> None:
    assert backend.secrets.get_secret(unique_name) is None
    assert backend.secrets.list_versions(unique_name) == []


def test_get_returns_the_latest_value_version_tags_and_expiry(backend: Backend, unique_name: str) -> None:
    expires = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
    first = backend.secrets.set_secret(unique_name, SecretValue("one"), {"slot": "key1"})
    second = backend.secrets.set_secret(unique_name, SecretValue("two"), {"slot": "key2"}, expires_on=expires)
    assert first and second and first != second
    latest = backend.secrets.get_secret(unique_name)
    assert latest is not None
    assert (latest.name, latest.value.reveal(), latest.version) == (unique_name, "two", second)
    assert dict(latest.tags) == {"slot": "key2"}
    assert latest.expires_on == expires


def test_expiry_is_kept_to_the_second(backend: Backend, unique_name: str) -> None:
    """Key Vault's ``exp`` is Unix seconds: a fraction of a second is dropped."""
    backend.secrets.set_secret(
        unique_name, SecretValue("v"), {}, expires_on=datetime(2031, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC)
    )
    latest = backend.secrets.get_secret(unique_name)
    assert latest is not None and latest.expires_on == datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_names_are_case_insensitive(backend: Backend, unique_name: str) -> None:
    backend.secrets.set_secret(unique_name.upper(), SecretValue("upper"), {})
    backend.secrets.set_secret(unique_name.lower(), SecretValue("lower"), {})
    latest = backend.secrets.get_secret(unique_name.upper())
    assert latest is not None and latest.value.reveal() == "lower"
    assert len(backend.secrets.list_versions(unique_name)) == 2


def test_versions_are_listed_oldest_first_with_their_tags_and_no_values(
    clocked_backend: Backend, unique_name: str
) -> None:
    written = []
    for slot in ("key1", "key2", "key1"):
        written.append(clocked_backend.secrets.set_secret(unique_name, SecretValue(slot), {"slot": slot}))
        clocked_backend.advance_clock(2)  # Key Vault stamps versions to the second
    versions = clocked_backend.secrets.list_versions(unique_name)
    assert [v.version for v in versions] == written
    assert [dict(v.tags) for v in versions] == [{"slot": "key1"}, {"slot": "key2"}, {"slot": "key1"}]
    created = [v.created_on for v in versions]
    assert all(c is not None and c.microsecond == 0 for c in created)  # Unix seconds
    assert created == sorted(created)  # type: ignore[type-var]
    assert not any(hasattr(v, "value") for v in versions)


def test_a_deleted_secret_refuses_writes_until_recovered(backend: Backend, unique_name: str) -> None:
    version = backend.secrets.set_secret(unique_name, SecretValue("kept"), {"slot": "key1"})
    backend.delete_secret(unique_name)
    assert backend.secrets.get_secret(unique_name) is None
    assert backend.secrets.list_versions(unique_name) == []
    with pytest.raises(SecretDeleted):
        backend.secrets.set_secret(unique_name, SecretValue("new"), {})
    backend.secrets.recover_secret(unique_name)
    recovered = backend.secrets.get_secret(unique_name)
    assert recovered is not None
    assert recovered.value.reveal() == "kept" and recovered.version == version
    assert dict(recovered.tags) == {"slot": "key1"}
    assert [v.version for v in backend.secrets.list_versions(unique_name)] == [version]
    backend.secrets.set_secret(unique_name, SecretValue("new"), {})
    latest = backend.secrets.get_secret(unique_name)
    assert latest is not None and latest.value.reveal() == "new"


def test_recovering_a_secret_that_is_not_deleted_does_nothing(backend: Backend, unique_name: str) -> None:
    backend.secrets.recover_secret(unique_name)  # never existed
    backend.secrets.set_secret(unique_name, SecretValue("live"), {})
    backend.secrets.recover_secret(unique_name)  # exists, not deleted
    latest = backend.secrets.get_secret(unique_name)
    assert latest is not None and latest.value.reveal() == "live"


def test_get_reports_when_the_latest_version_was_created(clocked_backend: Backend, unique_name: str) -> None:
    """The key-age report reads a slot secret's age from this (Key Vault's ``attributes.created``). The
    clock moves, so the real case gets a private emulator (``clocked_backend``)."""
    clocked_backend.secrets.set_secret(unique_name, SecretValue("one"), {})
    clocked_backend.advance_clock(120)
    second = clocked_backend.secrets.set_secret(unique_name, SecretValue("two"), {})
    latest = clocked_backend.secrets.get_secret(unique_name)
    versions = clocked_backend.secrets.list_versions(unique_name)
    assert latest is not None and latest.created_on is not None and latest.created_on.tzinfo is not None
    assert latest.created_on == next(v.created_on for v in versions if v.version == second)
    assert versions[0].created_on is not None
    assert latest.created_on - versions[0].created_on >= timedelta(seconds=119)


def test_reading_several_answers_each_as_get_secret_does_in_order(backend: Backend, unique_name: str) -> None:
    backend.secrets.set_secret(f"{unique_name}-a", SecretValue("a"), {"slot": "key1"})
    backend.secrets.set_secret(f"{unique_name}-b", SecretValue("b"), {})
    names = [f"{unique_name}-b", f"{unique_name}-missing", f"{unique_name}-a"]
    read = backend.secrets.get_secrets(names)
    assert [s.value.reveal() if s else None for s in read] == ["b", None, "a"]
    assert read == [backend.secrets.get_secret(name) for name in names]
