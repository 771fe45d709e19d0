"""The account directory (discovery's port): every case runs against ``testkit.fakes.FakeAccountDirectory``
and against ``shared.azure.resource_manager.ArmAccountDirectory`` built by ``shared.bootstrap.build_ports``
with the discovery settings, talking to a private emulator whose ARM lists page two accounts at a time."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from emulator.client.launcher import DEMO_ACCOUNT_ID
from rotation.errors import AzureAccessDenied, TransientAzureError
from rotation.ports import AccountDirectory, DiscoveredAccount
from shared.bootstrap import build_credential, build_ports
from shared.settings import load_settings
from testkit.fakes import FakeAccountDirectory

SUB_A = "cccccccc-0000-0000-0000-00000000000a"
SUB_B = "cccccccc-0000-0000-0000-00000000000b"
SUB_EMPTY = "cccccccc-0000-0000-0000-0000000000ee"


def rid(sub: str, group: str, name: str) -> str:
    provider = "providers/Microsoft.CognitiveServices/accounts"
    return f"/subscriptions/{sub}/resourceGroups/{group}/{provider}/{name}"


@dataclass
class DirectoryBackend:
    name: str
    directory: Callable[[tuple[str, ...]], AccountDirectory]  # scopes -> the port
    add: Callable[[str, dict[str, str]], None]
    set_tags: Callable[[str, dict[str, str]], None]
    delete: Callable[[str], None]
    fail_listings: Callable[[int], None]  # every listing fails with this HTTP status for a while


_FAILURES: dict[int, type[Exception]] = {503: TransientAzureError, 403: AzureAccessDenied}


def fake_backend() -> DirectoryBackend:
    fake = FakeAccountDirectory()

    def directory(scopes: tuple[str, ...]) -> AccountDirectory:
        fake.scopes = scopes
        return fake

    def fail(status: int) -> None:
        for _ in range(3):
            fake.fail_next(_FAILURES[status](f"arm.list_accounts: HTTP {status}"))

    return DirectoryBackend("fake", directory, fake.add, fake.set_tags, fake.delete, fail)


def real_backend(request: pytest.FixtureRequest) -> DirectoryBackend:
    emulator = request.getfixturevalue("fresh_emulator")  # empty scopes list every visible subscription
    azurite = request.getfixturevalue("azurite")
    emulator.apply_env(request.getfixturevalue("monkeypatch"))
    emulator.control.set_throttling(armListPageSize=2)
    emulator.control.delete_account(DEMO_ACCOUNT_ID)  # this emulator holds only what the case adds

    def directory(scopes: tuple[str, ...]) -> AccountDirectory:
        settings = load_settings({
            **emulator.app_env,
            "ROTATION_DISCOVERY": "true",
            "ROTATION_DISCOVERY_SCOPES": ",".join(scopes),
            "AzureWebJobsStorage": azurite.connection_string,
            "ROTATION_STATE_TABLE": "dirstate" + uuid.uuid4().hex[:8],
            "ROTATION_ASYNC_IO": str(request.param == "real-async").lower(),
        })  # fmt: skip
        built = build_ports(settings, build_credential(settings)).directory
        assert built is not None
        return built

    return DirectoryBackend(
        "real",
        directory,
        # same-named accounts each need their own (globally unique) custom subdomain, as in Azure
        lambda resource_id, tags: emulator.control.add_account(
            resource_id, tags=tags, subdomain="d" + uuid.uuid4().hex[:12]
        ),
        emulator.control.set_tags,
        emulator.control.delete_account,
        lambda status: emulator.control.add_fault("arm.list_accounts", status=status, count=50),
    )


@pytest.fixture(params=["fake", "real", "real-async"])
def directory_backend(request: pytest.FixtureRequest) -> Iterator[DirectoryBackend]:
    yield fake_backend() if request.param == "fake" else real_backend(request)


def by_id(accounts: list[DiscoveredAccount]) -> dict[str, dict[str, str]]:
    return {a.resource_id.lower(): dict(a.tags) for a in accounts}


@pytest.fixture
def seeded(directory_backend: DirectoryBackend) -> dict[str, str]:
    accounts = {
        "a1": (rid(SUB_A, "rg-one", "twin"), {"key-rotation": "enabled", "Team": "Payments"}),
        "a2": (rid(SUB_A, "rg-two", "twin"), {}),
        "a3": (rid(SUB_A, "rg-two", "solo"), {"key-rotation-period": "P7D"}),
        "b1": (rid(SUB_B, "rg-one", "twin"), {"key-rotation": "enabled"}),
        "b2": (rid(SUB_B, "rg-one", "other"), {}),
    }
    for resource_id, tags in accounts.values():
        directory_backend.add(resource_id, tags)
    return {key: value[0] for key, value in accounts.items()}


def test_scoped_listing_returns_every_account_of_those_subscriptions_with_tags_as_stored(
    directory_backend: DirectoryBackend, seeded: dict[str, str]
) -> None:
    listed = directory_backend.directory((SUB_A,)).list_accounts()
    assert sorted(a.resource_id.lower() for a in listed) == sorted(
        seeded[k].lower() for k in ("a1", "a2", "a3")
    )  # three accounts over two pages, same-named ones in two resource groups
    tags = by_id(listed)
    assert tags[seeded["a1"].lower()] == {"key-rotation": "enabled", "Team": "Payments"}
    assert tags[seeded["a2"].lower()] == {}
    both = directory_backend.directory((SUB_A, SUB_B)).list_accounts()
    assert len(both) == 5 and len({a.resource_id.lower() for a in both}) == 5


def test_empty_scopes_list_every_subscription_the_identity_can_see(
    directory_backend: DirectoryBackend, seeded: dict[str, str]
) -> None:
    listed = directory_backend.directory(()).list_accounts()
    assert {a.resource_id.lower() for a in listed} == {v.lower() for v in seeded.values()}


def test_a_subscription_without_accounts_lists_nothing(
    directory_backend: DirectoryBackend, seeded: dict[str, str]
) -> None:
    assert directory_backend.directory((SUB_EMPTY,)).list_accounts() == []


def test_tag_changes_and_deletions_show_in_the_next_listing(
    directory_backend: DirectoryBackend, seeded: dict[str, str]
) -> None:
    directory = directory_backend.directory((SUB_A, SUB_B))
    directory_backend.set_tags(seeded["a2"], {"key-rotation": "enabled"})
    directory_backend.set_tags(seeded["a1"], {})
    directory_backend.delete(seeded["b2"])
    tags = by_id(directory.list_accounts())
    assert seeded["b2"].lower() not in tags and len(tags) == 4
    assert tags[seeded["a2"].lower()] == {"key-rotation": "enabled"}
    assert tags[seeded["a1"].lower()] == {}


@pytest.mark.parametrize(("status", "error"), [(503, TransientAzureError), (403, AzureAccessDenied)])
def test_a_failed_listing_raises_instead_of_returning_a_partial_list(
    directory_backend: DirectoryBackend, seeded: dict[str, str], status: int, error: type[Exception]
) -> None:
    directory = directory_backend.directory((SUB_A, SUB_B))
    directory_backend.fail_listings(status)
    with pytest.raises(error) as raised:
        directory.list_accounts()
    assert "arm.list_accounts" in str(raised.value) and str(status) in str(raised.value)
