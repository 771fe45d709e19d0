"""One clock for tests, the demo and the benchmarks."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


class ManualClock:
    """The engine's clock (``() -> datetime``) under the caller's control.

    Stopped (default): time moves only by ``advance`` or by setting ``now``. Ticking: the wall clock plus
    everything advanced so far — a benchmark jumps past the rotation period while drains take real seconds.
    ``timestamp`` is the same instant as epoch seconds (the ARM write budget's and the consumer cache's
    clocks). Thread-safe.
    """

    def __init__(self, now: datetime | None = None, *, ticking: bool = False) -> None:
        self._lock = threading.Lock()
        self._ticking = ticking
        self._now = now or datetime.now(UTC)
        self._offset = now - datetime.now(UTC) if ticking and now else timedelta(0)

    def __call__(self) -> datetime:
        with self._lock:
            return datetime.now(UTC) + self._offset if self._ticking else self._now

    @property
    def now(self) -> datetime:
        return self()

    @now.setter
    def now(self, value: datetime) -> None:
        with self._lock:
            if self._ticking:
                self._offset = value - datetime.now(UTC)
            else:
                self._now = value

    def advance(self, delta: timedelta = timedelta(0), /, **units: float) -> None:
        """``advance(timedelta(hours=1))`` or ``advance(hours=1)`` (any ``timedelta`` keyword)."""
        step = delta + timedelta(**units)
        with self._lock:
            if self._ticking:
                self._offset += step
            else:
                self._now += step

    def timestamp(self) -> float:
        return self().timestamp()
