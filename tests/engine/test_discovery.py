"""Discovery by tag, end to end: only the discovery settings (no ROTATION_TARGETS), the production service
from ``shared.bootstrap.build_service`` (real SDK clients) against a private emulator (ARM lists paged two
accounts at a time) and Azurite."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from emulator.client.azurite import AzuriteProcess
from emulator.client.launcher import EmulatorProcess
from rotation.discovery import default_prefix
from rotation.errors import UnknownTarget
from rotation.service import RotationService
from shared.bootstrap import build_service
from shared.settings import load_settings

SUBS = (
    "aaaaaaaa-0000-0000-0000-000000000001",
    "aaaaaaaa-0000-0000-0000-000000000002",
    "aaaaaaaa-0000-0000-0000-000000000003",
)
ON = {"key-rotation": "enabled"}


def rid(sub: str, group: str, name: str) -> str:
    provider = "providers/Microsoft.CognitiveServices/accounts"
    return f"/subscriptions/{sub}/resourceGroups/{group}/{provider}/{name}"


def service_for(emulator: EmulatorProcess, azurite: AzuriteProcess, monkeypatch: Any, **extra: str) -> Any:
    emulator.apply_env(monkeypatch)
    suffix = uuid.uuid4().hex[:8]
    settings = load_settings(
        {
            **emulator.app_env,
            "ROTATION_DISCOVERY": "true",
            "ROTATION_DISCOVERY_SCOPES": ",".join(SUBS[:2]),
            "AzureWebJobsStorage": azurite.connection_string,
            "ROTATION_STATE_TABLE": f"discstate{suffix}",
            "ROTATION_HISTORY_TABLE": f"dischistory{suffix}",
            "ROTATION_BUDGET_TABLE": f"discbudget{suffix}",
            "ROTATION_QUEUE": f"disc-{suffix}",
            **extra,
        }
    )
    assert settings.targets == ()  # only the discovery settings
    return build_service(settings)


@pytest.fixture
def fleet(fresh_emulator: EmulatorProcess) -> dict[str, str]:
    control = fresh_emulator.control
    control.set_throttling(armListPageSize=2)  # every listing below spans several nextLink pages
    accounts = {
        # the same name in two subscriptions and in two resource groups: each its own custom subdomain
        "twin-a": (rid(SUBS[0], "rg-one", "twin"), ON, "twin-a"),
        "twin-b": (rid(SUBS[1], "rg-one", "twin"), ON, "twin-b"),
        "twin-c": (rid(SUBS[1], "rg-two", "twin"), ON, "twin-c"),
        "overrides": (
            rid(SUBS[0], "rg-one", "custom"),
            {
                "Key-Rotation": "Enabled",  # tag names and the value are matched case-insensitively
                "key-rotation-period": "P7D",
                "key-rotation-drain": "PT2H",
                "key-rotation-prefix": "payments-openai",
                "key-rotation-verify": "none",
            },
            None,
        ),
        "untagged": (rid(SUBS[0], "rg-one", "plain"), {"team": "x"}, None),
        "disabled": (rid(SUBS[1], "rg-one", "off"), {"key-rotation": "disabled"}, None),
        "bad": (rid(SUBS[1], "rg-one", "bad"), {**ON, "key-rotation-period": "monthly"}, None),
        "out-of-scope": (rid(SUBS[2], "rg-one", "far"), ON, None),
    }
    for resource_id, tags, subdomain in accounts.values():
        control.add_account(resource_id, tags=tags, subdomain=subdomain)
    return {key: value[0] for key, value in accounts.items()}


def statuses(service: RotationService) -> dict[str, Any]:
    return {s.target.lower(): s for s in service.status()}


def test_a_discovery_only_sweep_adopts_exactly_the_tagged_accounts_with_their_overrides(
    fresh_emulator: EmulatorProcess,
    azurite: AzuriteProcess,
    monkeypatch: pytest.MonkeyPatch,
    fleet: dict[str, str],
) -> None:
    service = service_for(fresh_emulator, azurite, monkeypatch)
    summary = service.sweep()
    expected = {fleet[k].lower() for k in ("twin-a", "twin-b", "twin-c", "overrides")}
    assert {t.resource_id.lower() for t in service.targets} == expected
    assert (summary.seen, summary.advanced, summary.failed, summary.rejected) == (4, 4, 0, 1)
    seen = statuses(service)
    assert set(seen) == expected
    assert all(s.phase == "idle" and s.presence == "discovered" for s in seen.values())
    # Same-named accounts never share secrets: each default prefix hashes the whole resource id.
    twins = [seen[fleet[k].lower()].secret_prefix for k in ("twin-a", "twin-b", "twin-c")]
    assert len(set(twins)) == 3 and all(p.startswith("twin-") for p in twins)
    assert twins[0] == default_prefix(fleet["twin-a"])
    custom = seen[fleet["overrides"].lower()]
    assert custom.secret_prefix == "payments-openai" and custom.verify == "none"
    assert (custom.rotation_period_seconds, custom.drain_time_seconds) == (7 * 86400, 7200)
    with fresh_emulator.secret_client() as vault:
        assert vault.get_secret("payments-openai-active-key").value == "key1"
        for prefix in twins:
            assert vault.get_secret(f"{prefix}-active").value
    # First due dates are staggered over the period, deterministically per account.
    dues = {s.due_at for s in seen.values()}
    assert len(dues) == 4
    assert all(s.due_at is not None and s.due_at <= fresh_emulator_now(service) + timedelta(days=30)
               for s in seen.values())  # fmt: skip
    with pytest.raises(UnknownTarget):
        service.resolve(fleet["untagged"])


def fresh_emulator_now(service: RotationService) -> Any:
    return service.clock()


def test_untagged_and_deleted_accounts_stop_rotating_keep_history_and_show_as_gone(
    fresh_emulator: EmulatorProcess,
    azurite: AzuriteProcess,
    monkeypatch: pytest.MonkeyPatch,
    fleet: dict[str, str],
) -> None:
    service = service_for(fresh_emulator, azurite, monkeypatch)
    service.sweep()
    fresh_emulator.control.set_tags(fleet["twin-a"], {"key-rotation": "disabled"})
    fresh_emulator.control.delete_account(fleet["twin-b"])
    newcomer = rid(SUBS[0], "rg-one", "newcomer")
    fresh_emulator.control.add_account(newcomer, tags=ON)
    summary = service.sweep()
    assert (summary.seen, summary.advanced, summary.gone) == (3, 1, 2)  # the newcomer adopted at once
    seen = statuses(service)
    for key in ("twin-a", "twin-b"):
        gone = seen[fleet[key].lower()]
        assert gone.presence == "gone" and gone.phase == "idle"
        assert [r.step for r in service.history(fleet[key])] == ["adopt"]  # history kept
        with pytest.raises(UnknownTarget):
            service.request_rotation(fleet[key], reason="test")
    assert seen[newcomer.lower()].presence == "discovered"
    assert service.status(fleet["twin-b"])[0].presence == "gone"
    # Tagged again: rotated again, from the state it kept.
    fresh_emulator.control.set_tags(fleet["twin-a"], ON)
    service.sweep()
    assert statuses(service)[fleet["twin-a"].lower()].presence == "discovered"


def test_empty_scopes_discover_in_every_visible_subscription_and_a_failed_listing_keeps_the_fleet(
    fresh_emulator: EmulatorProcess,
    azurite: AzuriteProcess,
    monkeypatch: pytest.MonkeyPatch,
    fleet: dict[str, str],
) -> None:
    service = service_for(fresh_emulator, azurite, monkeypatch, ROTATION_DISCOVERY_SCOPES="")
    service.sweep()
    assert fleet["out-of-scope"].lower() in {t.resource_id.lower() for t in service.targets}
    assert len(service.targets) == 5
    fresh_emulator.control.add_fault("arm.list_accounts", status=503, count=20)
    summary = service.sweep()
    assert summary.discovery_error and "arm.list_accounts" in summary.discovery_error
    assert (summary.seen, summary.gone) == (5, 0)  # a failed listing never makes accounts look deleted
