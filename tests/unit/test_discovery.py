"""Discovery's pure rules: tags to Target fields, collision-free default prefixes, the fleet merge, and the
staggered first due date."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from rotation.discovery import DiscoveryTag, build_fleet, default_prefix, target_from_tags
from rotation.model import Target, VerifyMode, staggered_due

ON = {"key-rotation": "enabled"}


def rid(sub: str, group: str, name: str) -> str:
    provider = "providers/Microsoft.CognitiveServices/accounts"
    return f"/subscriptions/{sub}/resourceGroups/{group}/{provider}/{name}"


def test_default_prefixes_differ_for_the_same_name_in_other_groups_and_subscriptions() -> None:
    ids = [rid("s1", "rg", "oai"), rid("s2", "rg", "oai"), rid("s1", "rg2", "oai")]
    prefixes = [default_prefix(i) for i in ids]
    assert len(set(prefixes)) == 3 and all(p.startswith("oai-") and len(p) == 10 for p in prefixes)
    # stable, and blind to ARM's case-insensitivity
    assert default_prefix(ids[0].upper().replace("/SUBSCRIPTIONS", "/subscriptions")) != "" and (
        default_prefix(ids[0]) == default_prefix(ids[0].replace("rg", "RG"))
    )


def test_tags_override_period_drain_prefix_verify_and_vault() -> None:
    target = target_from_tags(
        rid("s", "g", "a"),
        {
            "KEY-ROTATION-PERIOD": "P7D",
            "key-rotation-drain": "PT2H",
            "key-rotation-prefix": "pay",
            "key-rotation-verify": "none",
            "key-rotation-vault": "kv-rot-2",
        },
    )
    assert (target.rotation_period, target.drain_time) == (timedelta(days=7), timedelta(hours=2))
    assert (target.secret_prefix, target.verify, target.source) == ("pay", VerifyMode.NONE, "discovered")
    assert target.vault_url == "https://kv-rot-2.vault.azure.net/"
    url = target_from_tags(rid("s", "g", "a"), {"key-rotation-vault": "https://kv9.vault.azure.cn"})
    assert url.vault_url == "https://kv9.vault.azure.cn/"


@pytest.mark.parametrize(
    ("tags", "named"),
    [
        ({"key-rotation-period": "monthly"}, "key-rotation-period"),
        ({"key-rotation-period": "P1D", "key-rotation-drain": "P2D"}, "key-rotation-drain"),
        ({"key-rotation-prefix": "no spaces"}, "key-rotation-prefix"),
        ({"key-rotation-verify": "maybe"}, "key-rotation-verify"),
        ({"key-rotation-vault": "https://evil.example/path"}, "key-rotation-vault"),
    ],
)
def test_a_bad_tag_is_named_in_the_error(tags: dict[str, str], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        target_from_tags(rid("s", "g", "a"), tags)


def test_fleet_is_explicit_plus_tagged_and_rejects_bad_tags_and_prefix_collisions() -> None:
    explicit = Target(rid("s", "g", "mine"), "mine", rotation_period=timedelta(days=90))
    discovered = [
        (rid("s", "g", "mine"), ON),  # also tagged: the explicit entry wins
        (rid("s", "g", "b"), ON),
        (rid("s", "g", "c"), {"key-rotation": "ENABLED"}),
        (rid("s", "g", "untagged"), {}),
        (rid("s", "g", "bad"), {**ON, "key-rotation-period": "x"}),
        (rid("s", "g", "thief"), {**ON, "key-rotation-prefix": "mine"}),  # would overwrite mine's secrets
        (rid("s", "g", "other-vault"), {**ON, "key-rotation-prefix": "mine", "key-rotation-vault": "kv2"}),
    ]
    fleet = build_fleet((explicit,), discovered, DiscoveryTag.parse("key-rotation=enabled"))
    names = [t.account_name for t in fleet.targets]
    assert names == ["mine", "b", "c", "other-vault"]
    assert fleet.targets[0].rotation_period == timedelta(days=90)
    reasons = {r.resource_id.rsplit("/", 1)[-1]: r.reason for r in fleet.rejected}
    assert set(reasons) == {"bad", "thief"}
    assert "already used" in reasons["thief"] and "key-rotation-prefix" in reasons["thief"]


def test_staggered_due_dates_spread_evenly_and_are_deterministic() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    period = timedelta(days=30)
    dues = [staggered_due(rid("s", "g", f"a{i}"), period, now) for i in range(3000)]
    assert all(now < d <= now + period for d in dues)
    per_day = Counter((d - now).days for d in dues)
    assert len(per_day) == 30 and max(per_day.values()) < 2 * 3000 / 30  # no day gets twice its share
    assert dues[7] == staggered_due(rid("s", "g", "a7"), period, now)
    # anchored to the clock, not to adoption: adopted a day later, the same account keeps its phase
    later = staggered_due(rid("s", "g", "a7"), period, now + timedelta(days=1))
    assert (later - dues[7]) % period == timedelta(0)
