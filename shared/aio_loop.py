"""The asynchronous I/O path (``ROTATION_ASYNC_IO``): one event loop per process, on a daemon thread, doing
the HTTP of the SDKs' ``.aio`` clients for the synchronous engine (docs/ENGINE.md "Asynchronous I/O").

Why: a synchronous call costs ~1.9 ms of CPU in requests + urllib3 + http.client; the same call on the
``.aio`` clients over one aiohttp session costs about two thirds of that (docs/BENCHMARKS.md §7). The domain
(ports, steps, runner, service) stays synchronous: the sweep's threads block on a future while this loop
does their requests, so nothing above the adapters knows which path is in use.

``BlockingClient`` is the seam: it wraps an ``.aio`` client (or one of its operation groups) and gives it
the synchronous client's interface — the same method names exist on both — so each adapter in
``shared/azure/`` is written once and takes either client. Exceptions reach the adapter unchanged (the
``.aio`` clients raise the same azure-core classes), so ``shared/azure/errors.py`` maps them as before; a
loop that does not answer in time, or is gone, raises an azure-core transport error that maps to a
transient error — a sweep thread never waits forever.

``IoLoop.run_each`` runs a sweep's targets without a thread each: every target's synchronous steps run as a
greenlet on the loop's own thread, and a call made there (``IoLoop.run`` from such a greenlet) awaits its
coroutine in place — the greenlet switches to the loop, which goes on with the other targets' calls, and is
switched back with the answer. No thread hand-off, no lock per call, no GIL passed between 17 threads on
one core: 0.88-0.92x the CPU per target-cycle of a thread per target in four of five runs, 1.03x in the
fifth (docs/BENCHMARKS.md §7, ninth pass).
This is how SQLAlchemy runs its synchronous ORM over asynchronous drivers (``greenlet_spawn``/
``await_only``). What it asks of the code a greenlet runs: a lock held across a call is an ``IoLock`` (a
greenlet must not block the loop's thread on a lock), and synchronous I/O goes through ``off_loop`` (it
would stall every target on the loop while it waits).
"""

from __future__ import annotations

import asyncio
import atexit
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from typing import Any, TypeVar, cast

from azure.core.exceptions import ServiceRequestError, ServiceResponseError

from shared.loop_greenlets import await_here, drive, on_target_greenlet

T = TypeVar("T")
logger = logging.getLogger(__name__)

# Values returned as they are; any other attribute of a wrapped client (an operation group such as
# ``accounts``) is wrapped in turn.
_PLAIN = (str, bytes, int, float, bool, type(None), dict, list, tuple)


class IoLoop:
    """An event loop on a daemon thread (a daemon, so a forgotten loop never blocks interpreter exit)."""

    def __init__(self, name: str = "rotation-aio") -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._on_close: list[Callable[[], Awaitable[None]]] = []

    @property
    def running(self) -> bool:
        return self._loop is not None and self._loop.is_running()

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                started = threading.Event()

                def serve() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(started.set)
                    loop.run_forever()

                self._thread = threading.Thread(target=serve, name=self._name, daemon=True)
                self._thread.start()
                started.wait()
                self._loop = loop
            return self._loop

    def run(self, make: Callable[[], Coroutine[Any, Any, T]], timeout: float | None) -> T:
        """Run the coroutine ``make()`` builds on the loop and wait at most ``timeout`` seconds for it (None:
        as long as it takes). From one of ``run_each``'s greenlets, awaited in place instead.

        ``make`` is called on the loop's thread, so SDK objects are only ever touched there. The hand-off
        is a task and a plain lock, not ``asyncio.run_coroutine_threadsafe``: its concurrent future (a
        condition variable, callbacks chained both ways) cost more CPU per call than the request's own
        Python work saved (docs/BENCHMARKS.md §7, third pass)."""
        if threading.current_thread() is self._thread:
            if on_target_greenlet():
                return await_here(self._bounded(make, timeout))
            raise RuntimeError("IoLoop.run called from its own loop: this would wait on itself")
        loop = self._loop or self._start()  # the lock only until the loop exists: this is every call
        if not loop.is_running():  # its thread died or it was stopped under its callers
            raise ServiceRequestError("the asynchronous I/O loop is not running (ROTATION_ASYNC_IO)")
        finished = threading.Lock()
        finished.acquire()
        outcome: list[Any] = []  # [True, result] or [False, exception], written once on the loop
        started: list[asyncio.Task[T]] = []

        def done(task: asyncio.Task[T]) -> None:
            if task.cancelled():
                outcome.extend((False, ServiceResponseError("the call was cancelled on the I/O loop")))
            elif (error := task.exception()) is not None:
                outcome.extend((False, error))
            else:
                outcome.extend((True, task.result()))
            finished.release()

        def start() -> None:
            try:
                task = loop.create_task(make())
            except BaseException as error:  # handed to the caller, who raises it
                outcome.extend((False, error))
                finished.release()
                return
            started.append(task)
            task.add_done_callback(done)

        try:
            loop.call_soon_threadsafe(start)
        except RuntimeError:  # closed: its thread died or the service shut it down
            raise ServiceRequestError("the asynchronous I/O loop is closed (ROTATION_ASYNC_IO)") from None
        if not finished.acquire(timeout=-1 if timeout is None else timeout):
            loop.call_soon_threadsafe(lambda: [task.cancel() for task in started])
            raise ServiceResponseError(_no_answer(timeout or 0))
        succeeded, value = outcome
        if succeeded:
            return cast(T, value)
        raise value

    @staticmethod
    async def _bounded(make: Callable[[], Coroutine[Any, Any, T]], timeout: float | None) -> T:
        """``make()`` awaited for at most ``timeout`` seconds, timing out as a call from a thread does."""
        limit = asyncio.timeout(timeout)
        try:
            async with limit:
                return await make()
        except TimeoutError:
            if not limit.expired():
                raise  # the call's own timeout (aiohttp's), not this bound
            raise ServiceResponseError(_no_answer(timeout or 0)) from None

    def run_each(
        self, calls: Sequence[Callable[[], T]], concurrency: int, done: Callable[[T], None], name: str = ""
    ) -> None:
        """Run every synchronous call as a greenlet on the loop's thread, at most ``concurrency`` at once,
        ``done(result)`` on each as it ends; this thread waits until all have ended, then raises the first
        exception one raised, if any (as a thread pool run to its end would). No bound on the whole: each
        call's Azure calls have theirs. ``name`` is the thread pool's naming, unused here."""
        failures: list[BaseException] = []

        async def all_of() -> None:
            gate = asyncio.Semaphore(concurrency)

            async def one(call: Callable[[], T]) -> None:
                async with gate:
                    try:
                        done(await drive(call))
                    except BaseException as error:  # recorded (``done``'s too); the others run to their end
                        failures.append(error)

            await asyncio.gather(*(one(call) for call in calls))

        self.run(all_of, None)
        if failures:
            raise failures[0]

    def on_close(self, close: Callable[[], Awaitable[None]]) -> None:
        """``close()`` is awaited on the loop when it shuts down (sessions, clients)."""
        self._on_close.append(close)

    def close(self, timeout: float = 10.0) -> None:
        """Close what registered with ``on_close``, stop the loop and join its thread. Idempotent."""
        with self._lock:
            loop, thread, self._loop = self._loop, self._thread, None
            closers, self._on_close = self._on_close, []
        if loop is None or thread is None:
            return

        async def shut() -> None:
            for close in reversed(closers):
                try:
                    await close()
                except Exception as error:  # best effort: the rest must still close
                    logger.warning("aio_loop.close_failed: %s", type(error).__name__)

        try:
            asyncio.run_coroutine_threadsafe(shut(), loop).result(timeout)
        except Exception as error:  # the loop is stopped below all the same
            logger.warning("aio_loop.shutdown_incomplete: %s", type(error).__name__)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if not thread.is_alive():
            loop.close()


def _no_answer(timeout: float) -> str:
    return (
        f"no answer within {timeout:g} s on the asynchronous I/O loop (ROTATION_ASYNC_IO): the call was "
        "cancelled; a later invocation retries"
    )


class BlockingClient:
    """The synchronous face of an ``.aio`` client: ``wrapped.get_secret(name)`` runs the coroutine on
    ``loop`` and returns its result; a paged listing comes back as an iterator that fetches one page per
    step (so a caller that stops early reads no further pages, as with the synchronous pager)."""

    def __init__(self, inner: Any, loop: IoLoop, timeout: float) -> None:
        self._inner = inner
        self._io = loop
        self._timeout = timeout

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if isinstance(value, _PLAIN):
            return value  # read each time: a plain attribute may change
        wrapped = self._blocking(value) if callable(value) else BlockingClient(value, self._io, self._timeout)
        self.__dict__[name] = wrapped  # methods and operation groups are fixed: wrapped once, not per call
        return wrapped

    def _blocking(self, method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            async def invoke() -> Any:
                result = method(*args, **kwargs)
                return await result if inspect.isawaitable(result) else result

            result = self._io.run(invoke, self._timeout)
            if hasattr(result, "by_page") and hasattr(result, "__aiter__"):
                return self._pages(result)
            return result

        return call

    def together(self, method: str, calls: Sequence[tuple[Any, ...]]) -> list[Any]:
        """The inner client's ``method`` once per argument tuple of ``calls``, awaited together (one round
        trip of wall time): each call's result, or the exception it raised, in order."""
        bound = getattr(self._inner, method)

        async def invoke() -> list[Any]:
            return await asyncio.gather(*(bound(*args) for args in calls), return_exceptions=True)

        return self._io.run(invoke, self._timeout)

    def _pages(self, paged: Any) -> Iterator[Any]:
        pages = paged.by_page()

        async def next_page() -> list[Any] | None:
            try:
                page = await pages.__anext__()
            except StopAsyncIteration:
                return None
            return [item async for item in page]

        while (items := self._io.run(next_page, self._timeout)) is not None:
            yield from items


_PROCESS_LOOP: IoLoop | None = None
_PROCESS_LOCK = threading.Lock()


def process_loop() -> IoLoop:
    """The one loop of this process, closed (with what registered on it) when the interpreter exits."""
    global _PROCESS_LOOP
    with _PROCESS_LOCK:
        if _PROCESS_LOOP is None:
            _PROCESS_LOOP = IoLoop()
            atexit.register(_PROCESS_LOOP.close)
        return _PROCESS_LOOP
