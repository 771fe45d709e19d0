"""Declared consumers and the drain computed from them (issue 14, part 1): settings, tags, the reason."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from rotation.consumers import DEFAULT_DRAIN, Consumer, ConsumerKind, plan_drain
from rotation.discovery import target_from_tags
from rotation.errors import SettingsError
from shared.target_settings import parse_targets

ACCOUNT = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/acc"
SITE = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Web/sites/app-x"
NAMED_VALUE = (
    "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.ApiManagement/service/apim-x/namedValues/openai-key"
)


def entry(**fields: object) -> str:
    return json.dumps([{"resourceId": ACCOUNT, **fields}])


def test_no_consumers_gives_a_default_drain_longer_than_the_key_vault_reference_interval() -> None:
    (target,) = parse_targets(entry())
    assert target.drain_time == DEFAULT_DRAIN == timedelta(hours=30)
    assert target.drain_time > timedelta(hours=24)
    assert target.drain_reason.startswith("drain 30h: default, no consumers declared")


def test_slowest_consumer_sets_the_drain_and_the_reason_names_it() -> None:
    (target,) = parse_targets(
        entry(
            consumers=[
                {"kind": "containerApp"},
                {"kind": "apiManagement", "resourceId": NAMED_VALUE},
                {"kind": "library", "refreshBound": "PT5M"},
            ]
        )
    )
    assert target.drain_time == timedelta(hours=4, minutes=10)
    assert (
        target.drain_reason == "drain 4h10m: API Management named value apim-x/openai-key, 4h bound + margin"
    )
    assert [c.kind for c in target.consumers] == [
        ConsumerKind.CONTAINER_APP,
        ConsumerKind.API_MANAGEMENT,
        ConsumerKind.LIBRARY,
    ]


def test_drain_is_never_shorter_than_the_largest_library_ttl() -> None:
    plan = plan_drain([Consumer(ConsumerKind.LIBRARY, refresh_bound=timedelta(hours=2))], None)
    assert plan.time >= timedelta(hours=2)
    assert plan.time == timedelta(hours=2, minutes=10)


def test_a_longer_explicit_drain_time_wins_and_says_so() -> None:
    (target,) = parse_targets(entry(drainTime="PT8H", consumers=[{"kind": "containerApp"}]))
    assert target.drain_time == timedelta(hours=8)
    assert target.drain_reason.startswith("drain 8h: drainTime setting, longer than the slowest consumer")


def test_a_shorter_explicit_drain_time_cannot_undercut_a_consumer() -> None:
    (target,) = parse_targets(entry(drainTime="PT5S", consumers=[{"kind": "appService", "resourceId": SITE}]))
    assert target.drain_time == timedelta(hours=25)
    assert "App Service app app-x" in target.drain_reason


@pytest.mark.parametrize(
    ("consumer", "message"),
    [
        ({"kind": "appservice", "resourceId": SITE}, "kind must be one of appService"),
        ({"kind": "appService"}, "needs its resourceId"),
        ({"kind": "appService", "resourceId": NAMED_VALUE}, "is not a appService id"),
        ({"kind": "kubernetes"}, "needs refreshBound"),
        ({"kind": "library", "refreshBound": "soon"}, "refreshBound: 'soon' is not an ISO 8601 duration"),
        ({"kind": "library", "refreshBound": "PT0S"}, "refreshBound must be positive"),
        ({"kind": "library", "ttl": "PT5M"}, "unknown field(s) ['ttl']"),
    ],
)
def test_bad_consumers_are_refused_naming_the_entry_and_the_field(
    consumer: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError) as error:
        parse_targets(entry(consumers=[consumer]))
    assert f"ROTATION_TARGETS[0] ({ACCOUNT}): consumers[0]" in str(error.value)
    assert message in str(error.value)


def test_a_drain_as_long_as_the_period_is_refused_with_the_way_out() -> None:
    with pytest.raises(SettingsError, match="lengthen rotationPeriod"):
        parse_targets(entry(rotationPeriod="PT2H", consumers=[{"kind": "library", "refreshBound": "PT3H"}]))


def test_consumers_from_account_tags() -> None:
    target = target_from_tags(
        ACCOUNT,
        {
            "key-rotation": "enabled",
            "key-rotation-consumer": f"apiManagement {NAMED_VALUE}",
            "Key-Rotation-Consumer-web": f"appService {SITE} PT2H",
            "key-rotation-consumer-lib": "library PT5M",
        },
    )
    assert {c.label for c in target.consumers} == {
        "API Management named value apim-x/openai-key",
        "App Service app app-x",
        "consumer library",
    }
    assert target.drain_time == timedelta(hours=4, minutes=10)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "must be '<kind> [<resource id>] [<refresh bound>]'"),
        ("queue PT5M", "kind must be one of"),
        ("kubernetes", "needs refreshBound"),
        ("library 5min", "not an ISO 8601 duration"),
    ],
)
def test_a_bad_consumer_tag_rejects_the_account_naming_the_tag(value: str, message: str) -> None:
    with pytest.raises(ValueError) as error:
        target_from_tags(ACCOUNT, {"key-rotation-consumer-2": value})
    assert "tag key-rotation-consumer-2" in str(error.value) and message in str(error.value)
