"""The asynchronous I/O path's loop (shared/aio_loop.py): a sync caller gets the coroutine's result or its
exception unchanged; a loop that hangs or is gone becomes a transient error, never a hang; pages are read
one at a time; closing leaves no thread behind."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from azure.core.exceptions import (
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from rotation.errors import TransientAzureError
from shared.aio_loop import BlockingClient, IoLoop
from shared.azure.errors import translate


class _Pages:
    """The shape of azure-core's ``AsyncItemPaged``: ``by_page()`` yields async pages of items."""

    def __init__(self, pages: list[list[int]], fetched: list[int]) -> None:
        self.pages, self.fetched = pages, fetched

    def __aiter__(self) -> AsyncIterator[int]:
        raise AssertionError("the blocking client reads by page")

    def by_page(self) -> AsyncIterator[AsyncIterator[int]]:
        async def pages() -> AsyncIterator[AsyncIterator[int]]:
            for number, page in enumerate(self.pages):
                self.fetched.append(number)

                async def items(page: list[int] = page) -> AsyncIterator[int]:
                    for item in page:
                        yield item

                yield items()

        return pages()


class _AioClient:
    """What an ``.aio`` client looks like to the seam: coroutine methods, a pager, an operation group."""

    vault_url = "https://vault.example/"

    def __init__(self) -> None:
        self.fetched: list[int] = []
        self.accounts = self  # an operation group, as CognitiveServicesManagementClient.accounts
        self.threads: list[str] = []

    async def get_secret(self, name: str) -> str:
        self.threads.append(threading.current_thread().name)
        await asyncio.sleep(0)
        return f"bundle of {name}"

    async def missing(self) -> None:
        raise ResourceNotFoundError("SecretNotFound")

    async def hang(self) -> None:
        await asyncio.sleep(3600)

    def list_versions(self) -> _Pages:
        return _Pages([[1, 2], [3, 4], [5]], self.fetched)


@pytest.fixture
def loop() -> Iterator[IoLoop]:
    io = IoLoop("test-aio")
    yield io
    io.close()


def test_a_call_runs_on_the_loop_and_returns_its_result(loop: IoLoop) -> None:
    inner = _AioClient()
    client: Any = BlockingClient(inner, loop, timeout=5)
    assert client.get_secret("a") == "bundle of a"
    assert client.accounts.get_secret("b") == "bundle of b"  # an operation group is wrapped in turn
    assert client.vault_url == "https://vault.example/"  # plain attributes as they are
    assert inner.threads == ["test-aio", "test-aio"]  # the SDK object is only ever touched on the loop


def test_the_sdk_exception_reaches_the_adapter_unchanged(loop: IoLoop) -> None:
    client: Any = BlockingClient(_AioClient(), loop, timeout=5)
    with pytest.raises(ResourceNotFoundError):
        client.missing()


def test_a_hung_call_is_cancelled_and_becomes_a_transient_error(loop: IoLoop) -> None:
    client: Any = BlockingClient(_AioClient(), loop, timeout=0.2)
    started = time.monotonic()
    with pytest.raises(ServiceResponseError) as raised:
        client.hang()
    assert time.monotonic() - started < 2
    error = translate(raised.value, "keyvault.get_secret", "https://vault.example/")
    assert isinstance(error, TransientAzureError) and "no complete answer" in str(error)
    assert client.get_secret("after") == "bundle of after"  # the loop still serves the next call


def test_a_closed_loop_is_a_transient_error_not_a_hang(loop: IoLoop) -> None:
    client: Any = BlockingClient(_AioClient(), loop, timeout=5)
    assert client.get_secret("a") == "bundle of a"
    loop.close()
    # a closed loop starts again on demand (a service built later in the process gets one) ...
    assert client.get_secret("b") == "bundle of b"
    # ... but one that died under its callers fails them at once
    dead = IoLoop("dead")
    dead.run(lambda: asyncio.sleep(0), 5)
    assert dead._loop is not None
    dead._loop.call_soon_threadsafe(dead._loop.stop)
    time.sleep(0.1)
    dead._loop.close()
    with pytest.raises(ServiceRequestError) as raised:
        BlockingClient(_AioClient(), dead, timeout=5).get_secret("c")
    assert isinstance(translate(raised.value, "table.get_entity"), TransientAzureError)


def test_pages_are_fetched_one_at_a_time(loop: IoLoop) -> None:
    inner = _AioClient()
    client: Any = BlockingClient(inner, loop, timeout=5)
    listed = client.list_versions()
    assert next(listed) == 1 and inner.fetched == [0]  # the first page only
    assert next(listed) == 2 and inner.fetched == [0]
    assert next(listed) == 3 and inner.fetched == [0, 1]
    assert list(client.list_versions()) == [1, 2, 3, 4, 5]


def test_closing_runs_the_closers_and_leaves_no_thread(loop: IoLoop) -> None:
    closed: list[str] = []

    async def close_session() -> None:
        closed.append("session")

    async def failing_close() -> None:
        raise HttpResponseError("close failed")

    loop.on_close(close_session)
    loop.on_close(failing_close)  # one failing closer does not stop the others
    client: Any = BlockingClient(_AioClient(), loop, timeout=5)
    client.get_secret("a")
    assert any(t.name == "test-aio" for t in threading.enumerate())
    loop.close()
    assert closed == ["session"]
    assert not any(t.name == "test-aio" for t in threading.enumerate())
    loop.close()  # idempotent
