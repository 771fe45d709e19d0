"""Each account's data plane at ``/accounts/{name}/``: key check, a cheap probe and a models list."""

from __future__ import annotations

import hmac
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulator.core import Emulator
from emulator.errors import DATAPLANE, DATAPLANE_DENIED_MESSAGE, dataplane_error, json_response
from emulator.operations import run_operation
from emulator.state import Account

ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
MODELS: list[dict[str, Any]] = [
    {
        "id": model,
        "object": "model",
        "created": 1715367049,
        "status": "succeeded",
        "lifecycle_status": "generally-available",
        "capabilities": {
            "chat_completion": True,
            "completion": False,
            "embeddings": False,
            "fine_tune": False,
            "inference": True,
        },
        "deprecation": {"inference": 1767225600},
    }
    for model in ("gpt-4o", "gpt-4o-mini")
]


class DataPlane:
    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    def routes(self) -> list[Route]:
        return [
            Route("/accounts/{account}", self.endpoint, methods=ALL_METHODS),
            Route("/accounts/{account}/{rest:path}", self.endpoint, methods=ALL_METHODS),
        ]

    async def endpoint(self, request: Request) -> Response:
        return await run_operation(self.emulator, request, "dataplane.request", DATAPLANE, self.handle)

    def _key_accepted(self, presented: str, account: Account) -> bool:
        now = self.emulator.now()
        for key, accepted_from in (
            (account.key1, account.key1_accepted_from),
            (account.key2, account.key2_accepted_from),
        ):
            if hmac.compare_digest(presented.encode(), key.encode()) and now >= accepted_from:
                return True
        return False

    async def handle(self, request: Request) -> Response:
        account_name = request.path_params["account"]
        account = self.emulator.state.account_by_name(account_name)
        if account is None:
            return dataplane_error(
                404,
                "ResourceNotFound",
                f"No Cognitive Services account named {account_name!r} in this emulator.",
            )
        if account.disable_local_auth:
            return dataplane_error(
                401, "AuthenticationTypeDisabled", "Key based authentication is disabled for this resource."
            )
        presented = request.headers.get("api-key") or request.headers.get("ocp-apim-subscription-key") or ""
        if not presented or not self._key_accepted(presented, account):
            return dataplane_error(401, "401", DATAPLANE_DENIED_MESSAGE)
        rest = request.path_params.get("rest", "").strip("/")
        if rest == "":
            return json_response({"status": "ok", "account": account.name, "kind": account.kind})
        if rest.lower() == "openai/models" and request.method == "GET":
            return json_response({"data": MODELS, "object": "list"})
        return json_response({"object": "emulator.echo", "method": request.method, "path": "/" + rest})
