"""``httpx`` integration (optional dependency): set the key header, retry once on 401."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from typing import TYPE_CHECKING

import anyio.to_thread
import httpx

if TYPE_CHECKING:
    from .rotating_key import RotatingKey


class RotatingKeyHttpxAuth(httpx.Auth):
    """``httpx.Client(auth=key.httpx_auth())`` or ``httpx.AsyncClient(auth=...)``.

    Sets ``header`` (``api-key`` by default) from the cache; on a 401 the cache re-reads Key Vault
    and the request is sent once more with the new key. In async clients the Key Vault reads run in a
    worker thread, so the event loop never blocks on them; the warm path stays on the loop.
    """

    # httpx must buffer the body to be able to send it a second time after a 401.
    requires_request_body = True

    def __init__(self, rotating_key: RotatingKey, header: str) -> None:
        if not header:
            raise ValueError("header must be a non-empty header name")
        self._rotating_key = rotating_key
        self._header = header

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        used = self._rotating_key.current()
        request.headers[self._header] = used.value
        response = yield request
        if response.status_code != 401:
            return
        replacement = self._rotating_key.refresh_after_unauthorized(used)
        if replacement is not None:
            request.headers[self._header] = replacement.value
            yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        used = await anyio.to_thread.run_sync(self._rotating_key.current)
        request.headers[self._header] = used.value
        response = yield request
        if response.status_code != 401:
            return
        replacement = await anyio.to_thread.run_sync(self._rotating_key.refresh_after_unauthorized, used)
        if replacement is not None:
            request.headers[self._header] = replacement.value
            yield request

    def __repr__(self) -> str:
        return f"RotatingKeyHttpxAuth(header={self._header!r}, key={self._rotating_key!r})"
