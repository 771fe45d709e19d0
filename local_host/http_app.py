"""The host's HTTP side: every HTTP-triggered function at ``/{routePrefix}/{route}`` and the Event Grid
webhook at ``/runtime/webhooks/eventgrid?functionName=…``, built from the functions' bindings.

Routes are matched on the raw (still percent-encoded) path, as the Functions host does: it does not decode
``%2F`` inside a route segment, so a route value arrives as sent (triggers/admin_requests.py decodes it).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from typing import Any

import azure.functions as func
from azure.functions import meta
from azure.functions.eventgrid import EventGridEventInConverter
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from local_host.bindings import FunctionSpec
from local_host.keys import HostKeys

logger = logging.getLogger("local_host")
Invoke = Callable[[FunctionSpec, dict[str, Any]], Any]


def route_pattern(prefix: str, route: str) -> re.Pattern[str]:
    """``targets/{name}/rotate`` → a regex over the raw path; ``{x?}`` optional, ``{x:constraint}`` kept
    as a plain segment, ``{*rest}`` the remainder."""
    parts = []
    for segment in filter(None, f"{prefix}/{route}".split("/")):
        match = re.fullmatch(r"\{(\*)?([A-Za-z_][A-Za-z0-9_]*)(?::[^}?]*)?(\?)?\}", segment)
        if match is None:
            parts.append("/" + re.escape(segment))
        elif match.group(1):
            parts.append(f"/(?P<{match.group(2)}>.*)")
        elif match.group(3):
            parts.append(f"(?:/(?P<{match.group(2)}>[^/]+))?")
        else:
            parts.append(f"/(?P<{match.group(2)}>[^/]+)")
    return re.compile("".join(parts) + "/?", re.IGNORECASE)


def build_app(specs: list[FunctionSpec], keys: HostKeys, route_prefix: str, invoke: Invoke) -> Starlette:
    http = [
        (route_pattern(route_prefix, str(s.trigger.get("route") or s.name)), s)
        for s in specs
        if s.kind == "httpTrigger"
    ]
    eventgrid = {s.name: s for s in specs if s.kind == "eventGridTrigger"}

    async def http_function(request: Request) -> Response:
        raw_path = request.scope.get("raw_path", b"").decode("latin-1") or request.url.path
        for pattern, spec in http:
            match = pattern.fullmatch(raw_path)
            if match is None:
                continue
            methods = [m.upper() for m in spec.trigger.get("methods") or []]
            if methods and request.method not in methods:
                continue
            if not keys.allows(request, str(spec.trigger.get("authLevel", "FUNCTION"))):
                return Response(status_code=401)  # the host answers before any code runs, with no body
            trigger = func.HttpRequest(
                method=request.method,
                url=str(request.url),
                headers=dict(request.headers),
                params=dict(request.query_params),
                route_params={k: v for k, v in match.groupdict().items() if v is not None},
                body=await request.body(),
            )
            result = await run_in_threadpool(invoke, spec, {str(spec.trigger["name"]): trigger})
            return _response(result)
        return Response(status_code=404)

    async def eventgrid_webhook(request: Request) -> Response:
        if not keys.allows(request, "system"):
            return Response(status_code=401)
        name = request.query_params.get("functionName", "")
        spec = eventgrid.get(name)
        if spec is None:
            return PlainTextResponse(f"cannot find function: '{name}'", status_code=404)
        kind = request.headers.get("aeg-event-type", "").lower()
        try:
            document = json.loads(await request.body())
        except ValueError:
            return PlainTextResponse("the request content is not JSON", status_code=400)
        if kind == "subscriptionvalidation":
            first = document[0] if isinstance(document, list) and document else document
            data = first.get("data") if isinstance(first, dict) else None
            if isinstance(data, str):  # CloudEvents carry it double-encoded
                data = json.loads(data)
            code = data.get("validationCode") if isinstance(data, dict) else None
            if not isinstance(code, str):
                return PlainTextResponse("no validationCode in the validation event", status_code=400)
            logger.info("local_host: Event Grid handshake for %s", name)
            return JSONResponse({"validationResponse": code})
        if kind == "unsubscribe":
            return Response(status_code=202)
        if kind != "notification":
            return Response(status_code=400)
        events = document if isinstance(document, list) else [document]
        failed = None
        for event in events:  # single dispatch: one invocation per event
            trigger = EventGridEventInConverter.decode(
                meta.Datum(json.dumps(event), "json"), trigger_metadata={}
            )
            try:
                await run_in_threadpool(invoke, spec, {str(spec.trigger["name"]): trigger})
            except Exception as error:  # Event Grid retries the whole batch on a 500
                failed = error
        if failed is not None:
            return PlainTextResponse(f"{type(failed).__name__}", status_code=500)
        return Response(status_code=202)

    routes = [
        Route("/runtime/webhooks/eventgrid", eventgrid_webhook, methods=["POST"]),
        Route(
            "/{path:path}",
            http_function,
            methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
        ),
    ]
    return Starlette(routes=routes)


def _response(result: Any) -> Response:
    if not isinstance(result, func.HttpResponse):
        return Response(
            status_code=204 if result is None else 200, content=b"" if result is None else str(result)
        )
    headers = {k: v for k, v in result.headers.items() if k.lower() != "content-type"}
    media = result.mimetype + (f"; charset={result.charset}" if result.charset else "")
    return Response(
        content=result.get_body(), status_code=result.status_code, headers=headers, media_type=media
    )


def timed(invoke: Callable[[FunctionSpec, dict[str, Any]], Any]) -> Invoke:
    """Log each invocation as the host's console does (name, duration, failure) — never its arguments."""

    def run(spec: FunctionSpec, arguments: dict[str, Any]) -> Any:
        started = time.monotonic()
        try:
            result = invoke(spec, arguments)
        except Exception as error:
            logger.warning(
                "local_host: %s failed after %d ms: %s",
                spec.name,
                (time.monotonic() - started) * 1000,
                type(error).__name__,
            )
            raise
        logger.info("local_host: %s ran (%d ms)", spec.name, (time.monotonic() - started) * 1000)
        return result

    return run
