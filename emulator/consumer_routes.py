"""The routes of the emulated consumers (``emulator/consumers.py``): ARM ``Microsoft.Web/sites`` Key Vault
references and ``Microsoft.ApiManagement`` named values, behind the same authentication, api-version check,
throttling, counters and faults as every ARM call; and their control routes under ``/_emulator``."""

from __future__ import annotations

import re
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Scope

from emulator.arm import ArmCognitiveServices
from emulator.consumers import ConsumerBook, control_view, named_value_view, reference_view
from emulator.control_api import ControlApi, _body
from emulator.core import Emulator
from emulator.errors import ARM, arm_error, json_response
from emulator.operations import run_operation

_ARM = r"^/subscriptions/(?P<subscription>[^/]+)/resourceGroups/(?P<group>[^/]+)/providers/"
REFERENCES_PATH = re.compile(
    _ARM + r"Microsoft\.Web/sites/(?P<name>[^/]+)/config/configreferences/appsettings(?:/(?P<key>[^/]+))?/?$",
    re.IGNORECASE,
)
NAMED_VALUE_PATH = re.compile(
    _ARM + r"Microsoft\.ApiManagement/service/(?P<service>[^/]+)/namedValues/(?P<name>[^/]+?)"
    r"(?:/(?P<action>refreshSecret))?/?$",
    re.IGNORECASE,
)


class _PathRoute(Route):
    """A route taken only for paths its (case-insensitive, as ARM's) pattern matches; others fall through
    to the Cognitive Services routes."""

    def __init__(self, pattern: re.Pattern[str], endpoint: Any) -> None:
        super().__init__("/subscriptions/{rest:path}", endpoint, methods=["GET", "POST"])
        self.pattern = pattern

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope.get("type") != "http" or not self.pattern.match(scope.get("path", "")):
            return Match.NONE, {}
        return super().matches(scope)


class ArmConsumers:
    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.book = ConsumerBook(emulator)
        self.arm = ArmCognitiveServices(emulator)

    def routes(self) -> list[Route]:
        return [_PathRoute(REFERENCES_PATH, self.references), _PathRoute(NAMED_VALUE_PATH, self.named_value)]

    async def references(self, request: Request) -> Response:
        match = REFERENCES_PATH.match(request.url.path)
        assert match is not None
        key = match["key"]
        if request.method == "POST":
            if (key or "").lower() != "refresh":
                return arm_error(
                    405, "HttpMethodNotAllowed", "The requested resource does not support http method 'POST'."
                )
            operation = "web.refresh_kv_references"
        else:
            operation = "web.get_kv_reference" if key else "web.list_kv_references"

        async def handler(req: Request) -> Response:
            entry = self._lookup(
                req, match, "appService", f"Microsoft.Web/sites/{match['name']}",
                f"The Resource 'Microsoft.Web/sites/{match['name']}' under resource group "
                f"'{match['group']}' was not found. For more details please go to "
                "https://aka.ms/ARMResourceNotFoundFix",
            )  # fmt: skip
            if isinstance(entry, Response):
                return entry
            headers = {**req.state.limit_headers, "x-ms-request-id": str(uuid.uuid4())}
            if req.method == "POST":
                # Learn documents the POST only; its body is not: the engine must read the references after.
                self.book.refresh(entry)
                return json_response({}, headers=headers)
            views = [reference_view(entry, name, res) for name, res in entry["resolved"].items()]
            if key:
                found = next((v for v in views if v["name"].lower() == key.lower()), None)
                if found is None:
                    return arm_error(404, "NotFound", f"App setting {key} is not a Key Vault reference.")
                return json_response(found, headers=headers)
            return json_response({"value": views, "nextLink": None}, headers=headers)

        return await run_operation(self.emulator, request, operation, ARM, handler)

    async def named_value(self, request: Request) -> Response:
        match = NAMED_VALUE_PATH.match(request.url.path)
        assert match is not None
        action = (match["action"] or "").lower()
        if (request.method, action) not in (("GET", ""), ("POST", "refreshsecret")):
            return arm_error(
                405,
                "HttpMethodNotAllowed",
                f"The requested resource does not support http method '{request.method}'.",
            )
        operation = "apim.refresh_secret" if action else "apim.get_named_value"

        async def handler(req: Request) -> Response:
            entry = self._lookup(
                req, match, "apiManagement",
                f"Microsoft.ApiManagement/service/{match['service']}/namedValues/{match['name']}",
                "Named value not found.",
            )  # fmt: skip
            if isinstance(entry, Response):
                return entry
            if action:
                self.book.refresh(entry)
            headers = {**req.state.limit_headers, "ETag": f'"{uuid.uuid4().hex}"'}
            return json_response(named_value_view(entry), headers=headers)

        return await run_operation(self.emulator, request, operation, ARM, handler)


    def _lookup(
        self, request: Request, match: re.Match[str], kind: str, provider_path: str, not_found: str
    ) -> dict[str, Any] | Response:
        """Authentication, api-version and throttling (reads; writes for a POST), then the consumer of that
        kind at ``/subscriptions/{sub}/resourceGroups/{rg}/providers/{provider_path}``, or ARM's 404."""
        refused = self.arm._guarded(
            request, match["subscription"], "writes" if request.method == "POST" else "reads"
        )
        if refused is not None:
            return refused
        resource_id = (
            f"/subscriptions/{match['subscription']}/resourceGroups/{match['group']}/providers/{provider_path}"
        )
        entry = self.book.find(resource_id)
        if entry is None or entry["kind"] != kind:
            return arm_error(404, "ResourceNotFound", not_found)
        return entry


class ConsumerControl:
    """``/_emulator/sites``, ``/_emulator/namedvalues``, ``/_emulator/consumers`` (docs/EMULATOR.md)."""

    def __init__(self, emulator: Emulator) -> None:
        self.book = ConsumerBook(emulator)

    def routes(self) -> list[Route]:
        p, w = "/_emulator", ControlApi._wrap
        return [
            Route(f"{p}/sites", w(self.add_site), methods=["POST"]),
            Route(f"{p}/sites/{{name}}/appsettings", w(self.app_settings), methods=["GET"]),
            Route(f"{p}/namedvalues", w(self.add_named_value), methods=["POST"]),
            Route(f"{p}/consumers", w(self.list_consumers), methods=["GET"]),
            Route(f"{p}/consumers", w(self.shape), methods=["PATCH"]),
        ]

    async def add_site(self, request: Request) -> Response:
        body = await _body(request)
        return json_response(
            control_view(self.book.add_site(body.get("resourceId"), body.get("appSettings"))), 201
        )

    async def add_named_value(self, request: Request) -> Response:
        body = await _body(request)
        entry = self.book.add_named_value(body.get("resourceId"), body.get("secretIdentifier"))
        return json_response(control_view(entry), 201)

    async def app_settings(self, request: Request) -> Response:
        """The app's environment (resolved values): what the demo's consumer reads its key from."""
        name = request.path_params["name"].lower()
        for entry in list(self.book.entries.values()):
            if entry["kind"] == "appService" and entry["resourceId"].rsplit("/", 1)[-1].lower() == name:
                self.book.catch_up(entry)
                return json_response({"appSettings": self.book.environment(entry)})
        return json_response({"error": {"code": "NotFound", "message": f"no site {name}"}}, 404)

    async def list_consumers(self, request: Request) -> Response:
        entries = list(self.book.entries.values())
        for entry in entries:
            self.book.catch_up(entry)
        return json_response({"consumers": [control_view(e) for e in entries]})

    async def shape(self, request: Request) -> Response:
        body = await _body(request)
        entry = self.book.shape(body.get("resourceId"), body.get("refreshDelaySeconds"), body.get("stuck"))
        return json_response(control_view(entry))
