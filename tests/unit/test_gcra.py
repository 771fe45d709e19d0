"""The shared budget's arithmetic (``shared.budgets.gcra``): a token bucket kept as one number."""

from __future__ import annotations

from shared.budgets import gcra


def test_burst_then_rate_then_wait() -> None:
    tat, now, taken = 0.0, 1000.0, 0
    while True:
        allowed, tat, wait = gcra(tat, now, 1, rate=10, burst=200)
        if not allowed:
            break
        taken += 1
    assert taken == 200 and 0 < wait <= 0.1 + 1e-9
    allowed, _, _ = gcra(tat, now + wait, 1, rate=10, burst=200)
    assert allowed
    # ten seconds later exactly 100 more
    later, count = now + 10, 0
    while gcra(tat, later, 1, 10, 200)[0]:
        tat = gcra(tat, later, 1, 10, 200)[1]
        count += 1
    assert count == 100


def test_several_writes_are_taken_at_once_or_not_at_all() -> None:
    allowed, tat, _ = gcra(0.0, 50.0, 4, rate=1, burst=5)
    assert allowed
    allowed, tat2, wait = gcra(tat, 50.0, 4, rate=1, burst=5)
    assert not allowed and tat2 == tat and wait == 3.0
