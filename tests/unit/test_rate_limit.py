from __future__ import annotations

from shared.rate_limit import TokenBucketLimiter


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refill_per_subscription() -> None:
    ticks = Ticks()
    limiter = TokenBucketLimiter(rate_per_second=2, burst=3, clock=ticks)
    assert [limiter.try_acquire("sub-a") for _ in range(4)] == [True, True, True, False]
    assert limiter.try_acquire("SUB-B")  # another subscription has its own bucket
    ticks.now = 0.5
    assert limiter.try_acquire("sub-a") and not limiter.try_acquire("sub-a")


def test_retry_after_blocks_until_it_has_passed() -> None:
    ticks = Ticks()
    limiter = TokenBucketLimiter(rate_per_second=10, burst=10, clock=ticks)
    limiter.penalize("sub", 5)
    ticks.now = 4.9
    assert not limiter.try_acquire("sub")
    ticks.now = 5.2
    assert limiter.try_acquire("sub")
