"""How several targets advance side by side (a sweep, a queue message naming a group): every target's steps
are synchronous code that waits on its Azure calls, so each needs something to wait on of its own.

``on_threads`` is a thread each, at most ``concurrency`` at once: the default, and what the synchronous
clients need. With the asynchronous I/O path the composition root passes ``IoLoop.run_each`` instead
(shared/aio_loop.py), the same contract on greenlets on the event loop's own thread, which costs less CPU
per call (docs/BENCHMARKS.md §7, ninth pass). Both run every call to its end before returning.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Protocol, TypeVar

T = TypeVar("T")


class SideBySide(Protocol):
    def __call__(
        self, calls: Sequence[Callable[[], T]], concurrency: int, done: Callable[[T], None], name: str = ""
    ) -> None:
        """Run every call, at most ``concurrency`` at once, ``done(result)`` on each as it ends (on any
        thread, one at a time); return when all have ended, raising the first exception one raised."""


def on_threads(
    calls: Sequence[Callable[[], T]], concurrency: int, done: Callable[[T], None], name: str = ""
) -> None:
    """A thread per call (``name`` prefixes the threads' names), but a lone call runs on the caller's thread;
    ``done`` runs on the caller's thread."""
    if len(calls) == 1:  # no thread to start for one
        done(calls[0]())
        return
    failures: list[BaseException] = []
    workers = max(1, min(concurrency, len(calls)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name) as pool:
        for future in as_completed([pool.submit(call) for call in calls]):
            try:
                done(future.result())
            except BaseException as error:  # recorded (``done``'s too); the others run to their end
                failures.append(error)
    if failures:
        raise failures[0]
