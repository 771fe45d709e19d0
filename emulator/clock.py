"""The emulator's clock: wall time plus an offset the control API can move (for expiry events)."""

from __future__ import annotations

import time


class Clock:
    def __init__(self, offset_seconds: float = 0.0) -> None:
        self.offset_seconds = offset_seconds

    def now(self) -> float:
        return time.time() + self.offset_seconds

    def advance(self, seconds: float) -> None:
        self.offset_seconds += seconds

    def set_now(self, epoch_seconds: float) -> None:
        self.offset_seconds = epoch_seconds - time.time()
