"""Per-subscription token bucket for ARM writes (regenerateKey and listKeys: both are POSTs, which ARM
counts as writes). ARM refills about 10 writes/s with a burst
of 200 per subscription; we stay under it (ARM_WRITES_PER_SECOND / ARM_WRITE_BURST) and stop writing
until Retry-After after a 429. It never blocks (I6): a target without a token waits for a later sweep."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from rotation.ports import WriteRateLimiter


class TokenBucketLimiter(WriteRateLimiter):
    def __init__(
        self, rate_per_second: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate_per_second
        self.burst = float(burst)
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # subscription -> (tokens, at)
        self._blocked_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def try_acquire(self, subscription_id: str, writes: int = 1) -> bool:
        key = subscription_id.lower()
        with self._lock:
            now = self.clock()
            if self._blocked_until.get(key, 0.0) > now:
                return False
            tokens, at = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens < writes:
                self._buckets[key] = (tokens, now)
                return False
            self._buckets[key] = (tokens - writes, now)
            return True

    def penalize(self, subscription_id: str, retry_after_seconds: float) -> None:
        key = subscription_id.lower()
        with self._lock:
            until = self.clock() + max(0.0, retry_after_seconds)
            self._blocked_until[key] = max(self._blocked_until.get(key, 0.0), until)
            self._buckets[key] = (0.0, self.clock())

    def release(self, subscription_id: str, writes: int) -> None:
        key = subscription_id.lower()
        with self._lock:
            now = self.clock()
            tokens, at = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            self._buckets[key] = (min(self.burst, tokens + writes), now)

    def wait_seconds(self, subscription_id: str, writes: int = 1) -> float:
        key = subscription_id.lower()
        with self._lock:
            now = self.clock()
            blocked = self._blocked_until.get(key, 0.0) - now
            tokens, at = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            return max(0.0, blocked, (writes - tokens) / self.rate if self.rate > 0 else 60.0)


def gcra(tat: float, now: float, writes: int, rate: float, burst: float) -> tuple[bool, float, float]:
    """One step of the generic cell rate algorithm — a token bucket kept as a single number, the
    "theoretical arrival time" (``tat``) at which the bucket is full again, so instances can share it
    through one compare-and-swap entity. Returns (allowed, new tat, seconds to wait when refused)."""
    interval = 1.0 / rate
    new_tat = max(tat, now) + writes * interval
    allowed_at = new_tat - burst * interval
    if allowed_at <= now + 1e-9:  # float sums of the interval must not cost a token
        return True, new_tat, 0.0
    return False, tat, allowed_at - now
