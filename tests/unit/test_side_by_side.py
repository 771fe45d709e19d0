"""Targets side by side (rotation/side_by_side.py): a thread each (``on_threads``) or a greenlet each on the
I/O loop's thread (``IoLoop.run_each``) keep one contract — every call runs once, at most ``concurrency``
at once, ``done`` on each result, the first exception raised only after all have ended. On the loop, a call
is awaited in place with its own bound, a lock held across a call never blocks the loop (``IoLock``), and
synchronous I/O leaves the loop's thread (``off_loop``)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from azure.core.exceptions import ServiceResponseError

from rotation.side_by_side import SideBySide, on_threads
from shared.aio_loop import BlockingClient, IoLoop, process_loop
from shared.bootstrap import side_by_side
from shared.loop_greenlets import IoLock, off_loop, on_target_greenlet
from shared.settings import load_settings


class _Crash(BaseException):
    """Not an ``Exception``: as a process dying mid-step in the engine's tests (testkit.watch)."""


class _Service:
    """An ``.aio`` client whose calls take ``pause`` seconds on the loop, counting how many overlap."""

    def __init__(self, pause: float = 0.02) -> None:
        self.pause, self.active, self.most, self.served = pause, 0, 0, 0

    async def call(self, value: int) -> int:
        self.active += 1
        self.most = max(self.most, self.active)
        try:
            await asyncio.sleep(self.pause)
        finally:
            self.active -= 1
        self.served += 1
        return value * 10

    async def hang(self) -> None:
        await asyncio.sleep(3600)


@pytest.fixture
def loop() -> Iterator[IoLoop]:
    io = IoLoop("test-side-by-side")
    yield io
    io.close()


def _runners(loop: IoLoop) -> dict[str, SideBySide]:
    return {"threads": on_threads, "greenlets": loop.run_each}


@pytest.mark.parametrize("kind", ["threads", "greenlets"])
def test_every_call_runs_once_at_most_concurrency_at_once_each_result_done(loop: IoLoop, kind: str) -> None:
    service = _Service()
    client: Any = BlockingClient(service, loop, timeout=5)
    finished: list[int] = []
    calls = [lambda i=i: client.call(i) for i in range(12)]

    _runners(loop)[kind](calls, 4, finished.append, "rotation-test")

    assert sorted(finished) == [i * 10 for i in range(12)]
    assert service.served == 12
    assert service.most == 4  # as many at once as allowed, never more


@pytest.mark.parametrize("kind", ["threads", "greenlets"])
def test_the_first_failure_is_raised_after_every_other_call_has_ended(loop: IoLoop, kind: str) -> None:
    service = _Service(pause=0.05)
    client: Any = BlockingClient(service, loop, timeout=5)
    finished: list[int] = []

    def crash() -> int:
        raise _Crash("a process dying mid-step")

    calls: list[Callable[[], int]] = [crash, *(lambda i=i: client.call(i) for i in range(5))]
    with pytest.raises(_Crash):
        _runners(loop)[kind](calls, 3, finished.append, "rotation-test")
    assert sorted(finished) == [0, 10, 20, 30, 40]  # the others ran to their end and were reported
    assert service.active == 0


@pytest.mark.parametrize("kind", ["threads", "greenlets"])
def test_a_failing_report_is_raised_after_the_others_are_reported(loop: IoLoop, kind: str) -> None:
    client: Any = BlockingClient(_Service(), loop, timeout=5)
    reported: list[int] = []

    def done(result: int) -> None:
        reported.append(result)
        if len(reported) == 1:
            raise ValueError("the progress callback failed")

    with pytest.raises(ValueError, match="progress callback"):
        _runners(loop)[kind]([lambda i=i: client.call(i) for i in range(4)], 2, done, "rotation-test")
    assert sorted(reported) == [0, 10, 20, 30]


def test_greenlets_run_on_the_loops_thread_and_threads_each_on_their_own(loop: IoLoop) -> None:
    seen: dict[str, list[tuple[str, bool]]] = {"threads": [], "greenlets": []}
    for kind, run in _runners(loop).items():

        def where(kind: str = kind) -> None:
            seen[kind].append((threading.current_thread().name, on_target_greenlet()))

        run([where, where, where], 3, lambda _: None, "rotation-test")
    assert {name for name, _ in seen["greenlets"]} == {"test-side-by-side"}
    assert all(on for _, on in seen["greenlets"])
    assert all(name.startswith("rotation-test") and not on for name, on in seen["threads"])


def test_a_call_awaited_in_place_keeps_its_bound_and_the_loop_serves_the_others(loop: IoLoop) -> None:
    service = _Service()
    hung: Any = BlockingClient(service, loop, timeout=0.2)
    quick: Any = BlockingClient(service, loop, timeout=5)
    outcomes: list[object] = []

    def hang() -> object:
        try:
            return hung.hang()
        except ServiceResponseError as error:  # as from a thread: a transient error, the call cancelled
            return str(error)

    started = time.monotonic()
    loop.run_each([hang, *(lambda i=i: quick.call(i) for i in range(3))], 4, outcomes.append)
    assert time.monotonic() - started < 2
    assert sorted(o for o in outcomes if isinstance(o, int)) == [0, 10, 20]
    assert [o for o in outcomes if isinstance(o, str)] == [
        "no answer within 0.2 s on the asynchronous I/O loop (ROTATION_ASYNC_IO): the call was cancelled; a "
        "later invocation retries"
    ]


def test_a_lock_held_across_a_call_never_blocks_the_loop(loop: IoLoop) -> None:
    """Greenlets take an ``IoLock`` around a call (as a write budget's compare-and-swap): one at a time, and
    the loop serves the others meanwhile; a thread holding it makes a greenlet wait, not the loop."""
    service = _Service(pause=0.03)
    client: Any = BlockingClient(service, loop, timeout=5)
    lock = IoLock()
    inside: list[int] = []
    overlaps: list[int] = []

    def locked_call(i: int) -> int:
        with lock:
            inside.append(i)
            overlaps.append(len(inside))
            answer: int = client.call(i)  # the loop runs the other greenlets while this one waits
            inside.remove(i)
        return answer

    finished: list[int] = []
    loop.run_each([lambda i=i: locked_call(i) for i in range(4)], 4, finished.append)
    assert sorted(finished) == [0, 10, 20, 30] and overlaps == [1, 1, 1, 1]

    # greenlets and a thread (its calls handed to the same loop) taking turns: one holder at a time
    overlaps.clear()
    thread = threading.Thread(target=lambda: [locked_call(100 + i) for i in range(4)])
    thread.start()
    loop.run_each([lambda i=i: locked_call(i) for i in range(8)], 8, lambda _: None)
    thread.join(10)
    assert not thread.is_alive() and len(overlaps) == 12 and set(overlaps) == {1}

    # held by a thread: the greenlet that wants it waits, another greenlet's calls go on
    order: list[str] = []
    lock.acquire()

    def wants_lock() -> None:
        with lock:
            order.append("took the lock")

    def free_of_lock() -> None:
        for i in range(3):
            client.call(i)
        order.append("others served")
        threading.Timer(0.05, lock.release).start()  # the thread lets go afterwards

    loop.run_each([wants_lock, free_of_lock], 2, lambda _: None)
    assert order == ["others served", "took the lock"]
    assert not lock.locked()


def test_synchronous_io_from_a_greenlet_leaves_the_loops_thread(loop: IoLoop) -> None:
    service = _Service(pause=0.01)
    client: Any = BlockingClient(service, loop, timeout=5)
    threads: list[str] = []
    served_during_sleep: list[int] = []

    def blocking_io() -> None:  # requests, a synchronous SDK client
        threads.append(threading.current_thread().name)
        before = service.served
        time.sleep(0.3)
        served_during_sleep.append(service.served - before)

    def calls() -> None:
        for i in range(5):
            client.call(i)

    loop.run_each([lambda: off_loop(blocking_io), calls], 2, lambda _: None)
    assert threads and threads[0] != "test-side-by-side"
    assert served_during_sleep == [5]  # the loop kept serving the other target meanwhile
    off_loop(blocking_io)  # not on a greenlet: right here, on this thread
    assert threads[1] == threading.current_thread().name


def _settings(async_io: str) -> Any:
    account = "/subscriptions/s/resourceGroups/g/providers/Microsoft.CognitiveServices/accounts/a"
    targets = [{"resourceId": account}]
    return load_settings(
        {
            "KEY_VAULT_URL": "https://kv.vault.azure.net/",
            "AzureWebJobsStorage": "UseDevelopmentStorage=true",
            "ROTATION_TARGETS": json.dumps(targets),
            "ROTATION_ASYNC_IO": async_io,
        }
    )


def test_the_composition_root_runs_targets_as_greenlets_on_the_async_path_only() -> None:
    runner: Sequence[Any] = (side_by_side(_settings("true")), side_by_side(_settings("false")))
    assert runner[0] == process_loop().run_each  # the loop the .aio clients use
    assert runner[1] is on_threads
