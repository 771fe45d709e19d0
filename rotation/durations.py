"""The one grammar of durations this service reads — app settings (``ROTATION_TARGETS``' ``rotationPeriod``,
``drainTime``, ``refreshBound``; ``VERIFY_TIMEOUT``, ``EMERGENCY_DRAIN_TIME``) and account tags
(``key-rotation-period``, ``key-rotation-drain``, a consumer's bound) alike, so a value means the same
wherever an operator writes it.

ISO 8601 durations of weeks, days, hours, minutes and seconds (``P30D``, ``PT24H``, ``P1W``, ``PT1.5H``,
``P1DT12H``), any letter case, a decimal fraction (``.`` or ``,``) on any of them. Years and months are
refused: their length varies, and a rotation period must mean the same number of seconds every cycle.
"""

from __future__ import annotations

import re
from datetime import timedelta

_NUMBER = r"\d+(?:[.,]\d+)?"
_DURATION = re.compile(
    rf"^P(?:(?P<weeks>{_NUMBER})W)?(?:(?P<days>{_NUMBER})D)?"
    rf"(?:T(?=\d)(?:(?P<hours>{_NUMBER})H)?(?:(?P<minutes>{_NUMBER})M)?(?:(?P<seconds>{_NUMBER})S)?)?$"
)
_CALENDAR = re.compile(rf"^P(?:{_NUMBER}Y)?(?:{_NUMBER}M)?")  # before any T: years, months


def parse_duration(text: str) -> timedelta:
    """``text`` as a duration; ValueError naming what is wrong and an example of what is right."""
    value = str(text).strip().upper()
    match = _DURATION.match(value)
    parts = {unit: float(n.replace(",", ".")) for unit, n in match.groupdict().items() if n} if match else {}
    if parts:  # a bare "P" matches with no unit ("PT" does not: a T must be followed by a number)
        return timedelta(**parts)
    if value.startswith("-P"):
        raise ValueError(f"{text!r} is negative; a duration here is a length of time such as PT24H")
    calendar = _CALENDAR.match(value)
    if calendar and calendar.group(0) != "P":
        raise ValueError(f"{text!r} uses years or months, whose length varies; use days (e.g. P30D)")
    raise ValueError(f"{text!r} is not an ISO 8601 duration such as P30D, PT24H or PT5S")
