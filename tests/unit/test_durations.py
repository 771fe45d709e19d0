"""One duration grammar for app settings and account tags (``rotation.durations``)."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest

from rotation.discovery import TAG_DRAIN, TAG_PERIOD, target_from_tags
from rotation.durations import parse_duration
from rotation.errors import SettingsError
from shared.target_settings import parse_targets
from testkit.fakes import rid


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("P1W", timedelta(days=7)),
        ("P30D", timedelta(days=30)),
        ("pt90s", timedelta(seconds=90)),
        ("P1DT12H", timedelta(days=1, hours=12)),
        ("PT1.5H", timedelta(minutes=90)),
        ("PT0,5M", timedelta(seconds=30)),
        ("PT1.4S", timedelta(seconds=1.4)),
        (" PT0S ", timedelta(0)),
    ],
)
def test_durations_of_weeks_days_hours_minutes_seconds(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "is not an ISO 8601 duration such as P30D"),
        ("P", "is not an ISO 8601 duration"),
        ("PT", "is not an ISO 8601 duration"),
        ("P1DT", "is not an ISO 8601 duration"),
        ("30D", "is not an ISO 8601 duration"),
        ("soon", "is not an ISO 8601 duration"),
        ("P1Y", "uses years or months, whose length varies; use days (e.g. P30D)"),
        ("P1M", "uses years or months"),
        ("P1Y2M3D", "uses years or months"),
        ("-PT1H", "is negative"),
    ],
)
def test_a_bad_duration_says_what_is_wrong(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=re.escape(why)) as raised:
        parse_duration(text)
    assert repr(text) in str(raised.value)


@pytest.mark.parametrize("drain", ["PT1.5H", "pt90m", "P1DT12H", "PT0,25H"])
def test_a_setting_and_a_tag_read_the_same_duration_alike(drain: str) -> None:
    account = rid("dur")
    [from_setting] = parse_targets(json.dumps([{"resourceId": account, "drainTime": drain}]))
    from_tag = target_from_tags(account, {TAG_DRAIN: drain})
    assert from_setting.drain_time == from_tag.drain_time == parse_duration(drain)


@pytest.mark.parametrize(("text", "why"), [("P1M", "years or months"), ("-P1D", "negative"), ("P1DT", "ISO")])
def test_a_setting_and_a_tag_refuse_the_same_duration_alike_naming_where(text: str, why: str) -> None:
    account = rid("dur")
    with pytest.raises(SettingsError, match=why) as setting:
        parse_targets(json.dumps([{"resourceId": account, "rotationPeriod": text}]))
    assert "rotationPeriod" in str(setting.value) and "ROTATION_TARGETS[0]" in str(setting.value)
    with pytest.raises(ValueError, match=why) as tag:
        target_from_tags(account, {TAG_PERIOD: text})
    assert f"tag {TAG_PERIOD}" in str(tag.value)
