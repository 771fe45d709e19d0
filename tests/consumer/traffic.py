"""Background request loops for consumer integration tests: N threads, every outcome recorded."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable


class Traffic:
    """Runs ``send()`` (returns an HTTP status) in a loop on each of ``threads`` until stopped."""

    def __init__(self, make_sender: Callable[[], Callable[[], int]], threads: int) -> None:
        self._make_sender = make_sender
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.outcomes: Counter[str] = Counter()
        self._threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(threads)]

    def _loop(self) -> None:
        send = self._make_sender()
        while not self._stop.is_set():
            try:
                outcome = str(send())
            except Exception as exc:
                outcome = f"error:{type(exc).__name__}"
            with self._lock:
                self.outcomes[outcome] += 1

    def total(self) -> int:
        with self._lock:
            return sum(self.outcomes.values())

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
        assert not any(thread.is_alive() for thread in self._threads), "traffic thread hung"
