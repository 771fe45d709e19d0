"""Where a cycle's client CPU goes on the asynchronous I/O path, measured on one extra round of
``bench.cost_per_cycle`` (not a measured one: the timing adds its own small cost).

- **SDK coroutines**: the CPU of each call's own coroutine steps on the I/O loop — the SDK's pipeline, its
  policies, (de)serialization and aiohttp's request building — timed per step (``time.thread_time`` around
  each ``send``/``throw`` the loop makes into it), per SDK operation;
- **targets' steps**: the CPU of the targets' own steps when they run as greenlets on the loop
  (``IoLoop.run_each``, the default) — decisions, state and history records, logging — timed from each
  switch into one of its greenlets to the switch out (``greenlet.settrace`` on the loop's thread);
- **loop callbacks**: the rest of the loop thread's CPU (its ``_run_once`` iterations timed the same way) —
  reading responses (aiohttp's protocol, TLS), timers, waking for the hand-offs of calls made from threads;
- **other threads**: the process's CPU minus the loop thread's — the steps, decisions, state and history
  records and logging of targets run on threads (the ``threads`` variant, a lone target on its trigger's
  thread), and the triggers' own work.
"""

from __future__ import annotations

import threading
import time
from asyncio import base_events
from collections import Counter
from collections.abc import Callable, Coroutine, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import greenlet

from shared.aio_loop import IoLoop
from shared.loop_greenlets import is_target_greenlet


@dataclass
class Breakdown:
    loop_seconds: float = 0.0
    greenlet_seconds: float = 0.0  # the targets' own steps, inside loop_seconds (none on threads)
    calls: Counter[str] = field(default_factory=Counter)
    call_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def sdk_seconds(self) -> float:
        return sum(self.call_seconds.values())

    @property
    def callback_seconds(self) -> float:
        """The loop thread's CPU in neither a call's coroutine steps nor a target's greenlet."""
        return self.loop_seconds - self.sdk_seconds - self.greenlet_seconds


class _TimedSteps(Coroutine[Any, Any, Any]):
    """A coroutine whose steps are timed: the loop's task drives it through ``send``/``throw``."""

    def __init__(self, inner: Coroutine[Any, Any, Any]) -> None:
        self.inner, self.seconds = inner, 0.0

    def send(self, value: Any) -> Any:
        started = time.thread_time()
        try:
            return self.inner.send(value)
        finally:
            self.seconds += time.thread_time() - started

    def throw(self, *args: Any) -> Any:
        started = time.thread_time()
        try:
            return self.inner.throw(*args)
        finally:
            self.seconds += time.thread_time() - started

    def close(self) -> None:
        self.inner.close()

    def __await__(self) -> Generator[Any, None, Any]:
        return self  # type: ignore[return-value]  # a coroutine object is its own iterator

    def __next__(self) -> Any:
        return self.send(None)


def _operation(make: Callable[[], Any]) -> tuple[str, int]:
    """The SDK method a ``BlockingClient`` call runs (its closure's ``method``), or the pager's page; and
    how many calls of it (``BlockingClient.together`` runs several at once)."""
    cells = dict(zip(make.__code__.co_freevars, make.__closure__ or (), strict=True))
    if "bound" in cells and "calls" in cells:  # together: ``bound`` once per argument tuple of ``calls``
        return cells["bound"].cell_contents.__qualname__, len(cells["calls"].cell_contents)
    method = cells["method"].cell_contents if "method" in cells else None
    return getattr(method, "__qualname__", None) or make.__name__, 1


@contextmanager
def where_the_cpu_goes(io: IoLoop) -> Iterator[Breakdown]:
    """While inside, ``io``'s calls and loop iterations are timed into the yielded ``Breakdown``."""
    found = Breakdown()
    lock = threading.Lock()
    run, run_once = IoLoop.run, base_events.BaseEventLoop._run_once  # type: ignore[attr-defined]

    def timed_run(self: IoLoop, make: Callable[[], Coroutine[Any, Any, Any]], timeout: float | None) -> Any:
        if self is not io:
            return run(self, make, timeout)
        name, count = _operation(make)

        def timed() -> Coroutine[Any, Any, Any]:
            steps = _TimedSteps(make())

            async def counted() -> Any:
                try:
                    return await steps
                finally:
                    with lock:
                        found.calls[name] += count
                        found.call_seconds[name] = found.call_seconds.get(name, 0.0) + steps.seconds

            return counted()

        return run(self, timed, timeout)

    def timed_run_once(loop: Any) -> None:
        if threading.current_thread() is not io._thread:
            return run_once(loop)
        started = time.thread_time()
        try:
            run_once(loop)
        finally:
            found.loop_seconds += time.thread_time() - started

    switched_in: list[float] = []  # when the loop's thread switched into a target's greenlet

    def switches(event: str, args: tuple[Any, Any]) -> None:
        # a call awaited in place runs its coroutine steps on the loop's own greenlet, outside a target's
        if event in ("switch", "throw"):
            now = time.thread_time()
            if switched_in:
                found.greenlet_seconds += now - switched_in.pop()
            if is_target_greenlet(args[1]):
                switched_in.append(now)

    IoLoop.run = timed_run  # type: ignore[method-assign]
    base_events.BaseEventLoop._run_once = timed_run_once  # type: ignore[attr-defined]
    traced = _on_loop_thread(io, lambda: greenlet.settrace(switches))
    try:
        yield found
    finally:
        _on_loop_thread(io, lambda: greenlet.settrace(traced) if traced is not None else None)
        IoLoop.run = run  # type: ignore[method-assign]
        base_events.BaseEventLoop._run_once = run_once  # type: ignore[attr-defined]


def _on_loop_thread(io: IoLoop, call: Callable[[], Any]) -> Any:
    """``call()`` on the loop's thread (greenlet's trace function is per thread), its result here."""
    answer: list[Any] = []
    done = threading.Event()

    def there() -> None:
        answer.append(call())
        done.set()

    io._start().call_soon_threadsafe(there)
    done.wait(10)
    return answer[0] if answer else None
