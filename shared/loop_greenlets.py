"""The greenlets of ``IoLoop.run_each`` (shared/aio_loop.py): each runs one target's synchronous steps on
the event loop's own thread, and what those steps need to live there — awaiting a call in place
(``await_here``), a lock that never blocks the loop's thread (``IoLock``) and synchronous I/O moved to a
worker thread (``off_loop``).

A module of its own, importing neither asyncio nor aiohttp, because the adapters that use ``IoLock`` and
``off_loop`` are loaded on the synchronous path too, where neither is needed (a cold start's cost).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import greenlet

T = TypeVar("T")


class _TargetGreenlet(greenlet.greenlet):
    """A greenlet running one of ``IoLoop.run_each``'s calls on the loop's thread."""


def on_target_greenlet() -> bool:
    """Whether this code runs as one of ``IoLoop.run_each``'s calls (on the loop's thread)."""
    return is_target_greenlet(greenlet.getcurrent())


def is_target_greenlet(candidate: object) -> bool:
    """Whether ``candidate`` is one of ``IoLoop.run_each``'s greenlets (bench/loop_cpu.py times them)."""
    return isinstance(candidate, _TargetGreenlet)


def await_here(awaitable: Awaitable[T]) -> T:
    """From a target's greenlet: hand ``awaitable`` to the loop (``drive`` awaits it) and return its
    result, or raise its exception, when the greenlet is switched back to."""
    return cast(T, greenlet.getcurrent().parent.switch(awaitable))


async def drive(call: Callable[[], T]) -> T:
    """Run ``call`` as a greenlet, awaiting on the loop every awaitable it hands over (``await_here``)."""
    target = _TargetGreenlet(call, parent=greenlet.getcurrent())
    handed = target.switch()
    while not target.dead:
        try:
            answer = await handed
        except BaseException as error:  # raised where the greenlet waits (a cancellation too)
            handed = target.throw(error)
        else:
            handed = target.switch(answer)
    return cast(T, handed)


def off_loop(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``call(*args, **kwargs)`` — synchronous I/O (requests, a synchronous SDK client) — on a worker thread
    when made from a target's greenlet, so the loop goes on serving the other targets meanwhile; on any
    other thread, right there."""
    if on_target_greenlet():
        import asyncio  # loaded already: a greenlet of the loop's runs this

        return await_here(asyncio.to_thread(call, *args, **kwargs))
    return call(*args, **kwargs)


class IoLock:
    """A mutex for code that runs on threads and as ``IoLoop.run_each``'s greenlets alike, and may be held
    across an Azure call (a write budget's compare-and-swap, creating a table).

    A greenlet must not block the loop's thread on a ``threading.Lock``: its holder — another greenlet, or a
    thread whose call runs on this loop — can only finish when the loop runs. So a greenlet that finds it
    held parks on a future of the loop, and each release wakes the first one parked, which tries again (a
    thread may have taken it first: then it parks again, and that thread's release wakes it). A thread
    blocks as on any lock. Not reentrant."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._guard = threading.Lock()  # the parked greenlets, and trying the lock before parking
        self._parked: deque[tuple[Any, Any]] = deque()  # (loop, future)

    def acquire(self) -> None:
        if self._lock.acquire(blocking=False):
            return
        if not on_target_greenlet():
            self._lock.acquire()
            return
        import asyncio  # loaded already: a greenlet of the loop's runs this

        loop = asyncio.get_running_loop()
        while True:
            with self._guard:  # a release between a failed try and parking would wake nobody
                if self._lock.acquire(blocking=False):
                    return
                woken = loop.create_future()
                self._parked.append((loop, woken))
            await_here(woken)

    def release(self) -> None:
        self._lock.release()
        self._wake_first()

    def _wake_first(self) -> None:
        with self._guard:
            first = self._parked.popleft() if self._parked else None
        if first is not None:
            loop, woken = first
            loop.call_soon_threadsafe(self._wake, woken)

    def _wake(self, woken: Any) -> None:
        if woken.done():  # its greenlet was cancelled meanwhile: the release is the next one's
            self._wake_first()
        else:
            woken.set_result(None)

    def locked(self) -> bool:
        return self._lock.locked()

    def __enter__(self) -> IoLock:
        self.acquire()
        return self

    def __exit__(self, *_: object) -> None:
        self.release()
