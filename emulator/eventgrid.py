"""An Event Grid topic endpoint, as azure-eventgrid's EventGridPublisherClient publishes to it."""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulator.core import EVENTGRID_AUDIENCES, Emulator
from emulator.errors import EVENTGRID, eventgrid_error
from emulator.operations import run_operation
from emulator.tokens import TokenRejected

MAX_BATCH_BYTES = 1024 * 1024
EVENTGRID_REQUIRED = ("id", "subject", "eventType", "eventTime", "dataVersion")
CLOUDEVENT_REQUIRED = ("id", "source", "type", "specversion")


def _problems(events: list[Any], cloud_events: bool) -> list[str]:
    required = CLOUDEVENT_REQUIRED if cloud_events else EVENTGRID_REQUIRED
    problems = []
    for index, event in enumerate(events):
        if not isinstance(event, dict):
            problems.append(f"event {index} is not a JSON object")
            continue
        missing = [name for name in required if not event.get(name)]
        if missing:
            problems.append(f"event {index} is missing required properties {missing}")
        if not cloud_events and "data" not in event:
            problems.append(f"event {index} is missing required property 'data'")
    return problems


class EventGridTopic:
    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    def routes(self) -> list[Route]:
        return [Route("/eventgrid/topics/{topic}/api/events", self.endpoint, methods=["POST"])]

    async def endpoint(self, request: Request) -> Response:
        return await run_operation(self.emulator, request, "eventgrid.publish", EVENTGRID, self.publish)

    async def publish(self, request: Request) -> Response:
        try:
            self.emulator.tokens.check_authorization(
                request.headers.get("authorization"), EVENTGRID_AUDIENCES
            )
        except TokenRejected as rejected:
            return eventgrid_error(
                401,
                "Unauthorized",
                f"The request authorization is not valid ({rejected.problem.value}); send a "
                "bearer token for https://eventgrid.azure.net.",
            )
        if not request.query_params.get("api-version"):
            return eventgrid_error(400, "BadRequest", "The api-version query parameter is required.")
        raw = await request.body()
        if len(raw) > MAX_BATCH_BYTES:
            return eventgrid_error(413, "RequestEntityTooLarge", "The maximum size for a batch is 1 MB.")
        try:
            events = json.loads(raw)
        except ValueError:
            return eventgrid_error(400, "BadRequest", "The request body is not valid JSON.")
        if not isinstance(events, list) or not events:
            return eventgrid_error(
                400, "BadRequest", "The request body must be a non-empty JSON array of events."
            )
        cloud_events = "cloudevents" in request.headers.get("content-type", "").lower()
        problems = _problems(events, cloud_events)
        if problems:
            return eventgrid_error(400, "BadRequest", "; ".join(problems))
        topic = request.path_params["topic"]
        received = time.time()
        for event in events:
            self.emulator.state.eventgrid_events.append(
                {
                    "topic": topic,
                    "schema": "CloudEvents" if cloud_events else "EventGrid",
                    "receivedAt": received,
                    "event": event,
                }
            )
        self.emulator.persist()
        return Response(status_code=200)
