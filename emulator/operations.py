"""The common path of every emulated operation: count it, delay it, and apply an injected fault."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from emulator.errors import injected_error
from emulator.knobs import Fault

if TYPE_CHECKING:
    from emulator.core import Emulator

Handler = Callable[[Request], Awaitable[Response]]
ABORT_SCOPE_KEY = "emulator.abort_connection"


async def abort_connection(request: Request) -> None:
    """Drop the TCP connection without an HTTP response (a crashed front end, a reset by a proxy)."""
    abort = request.scope.get(ABORT_SCOPE_KEY)
    if abort is not None:
        abort()
    # Let the transport's connection_lost run so the server treats the exchange as finished.
    await asyncio.sleep(0)


async def _apply(request: Request, fault: Fault, family: str) -> Response:
    if fault.action == "drop":
        await abort_connection(request)
        return Response(status_code=500)
    if fault.action == "timeout":
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(fault.timeout_seconds)
        await abort_connection(request)
        return Response(status_code=504)
    return injected_error(family, fault.status, fault.code, fault.retry_after)


async def run_operation(
    emulator: Emulator, request: Request, operation: str, family: str, handler: Handler
) -> Response:
    knobs = emulator.knobs
    knobs.calls[operation] += 1
    delay = knobs.latency_for(operation)
    if delay > 0:
        await asyncio.sleep(delay)
    fault = knobs.take_fault(operation, request.url.path)
    if fault is not None and fault.when == "before":
        return await _apply(request, fault, family)
    response = await handler(request)
    if fault is not None:
        return await _apply(request, fault, family)
    return response


class ConnectionAbortMiddleware:
    """Outermost ASGI layer: gives handlers a way to drop the client connection.

    ASGI has no "reset the connection" message, so this reaches the server's transport through the
    ``send`` callable uvicorn passes in (a bound method of its request cycle, which owns the transport).
    Without such a transport the fault degrades to closing the response early.
    """

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(
        self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        if scope["type"] == "http":
            cycle = getattr(send, "__self__", None)
            transport = getattr(cycle, "transport", None)
            if transport is not None:
                scope[ABORT_SCOPE_KEY] = transport.abort
        await self.app(scope, receive, send)
