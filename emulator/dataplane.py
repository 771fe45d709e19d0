"""Account data planes, answered like the Cognitive Services gateway: route first (404 for a path that is
no API, whatever the key), then network rules, ``disableLocalAuth``, the key and, for Translator, the
region. Three endpoint shapes (``emulator/gateway.py``): an account's own host (custom subdomain), the
shared regional host and Translator's global host, where the key selects the account."""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import time
from collections.abc import Iterable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulator.core import Emulator
from emulator.errors import (
    DATAPLANE,
    DATAPLANE_DENIED_MESSAGE,
    FIREWALL_MESSAGE,
    LOCAL_AUTH_DISABLED_MESSAGE,
    TRANSLATOR_DENIED_MESSAGE,
    dataplane_error,
    json_response,
)
from emulator.gateway import Api, Shape, route
from emulator.operations import run_operation
from emulator.state import Account

ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
REGION_HEADER = "ocp-apim-subscription-region"
# Seen with the firewall's 403 (Azure-Samples/azure-sql-db-chatbot#3): the gateway policy that denied.
FIREWALL_HEADERS = {"policy-id": "ThrowExceptionDueToTrafficDenied"}
MODELS: list[dict[str, Any]] = [
    {
        "id": model,
        "object": "model",
        "created_at": 1715367049,
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
            Route(path, self.endpoint, methods=ALL_METHODS)
            for prefix in ("/accounts/{account}", "/regional/{region}", "/global/translator")
            for path in (prefix, prefix + "/{rest:path}")
        ]

    async def endpoint(self, request: Request) -> Response:
        return await run_operation(self.emulator, request, "dataplane.request", DATAPLANE, self.handle)

    async def handle(self, request: Request) -> Response:
        params = request.path_params
        shape = (
            Shape.CUSTOM if "account" in params else Shape.REGIONAL if "region" in params else Shape.GLOBAL
        )
        api = route(shape, request.method, params.get("rest", ""))
        if api is None:
            return not_found()
        if shape is Shape.CUSTOM:
            account = self.emulator.state.account_by_subdomain(params["account"])
            # No custom subdomain: that host does not exist; a kind without this API: no such route.
            if account is None or not account.custom_subdomain or account.kind not in api.kinds:
                return not_found()
            if not api.authenticated:
                return await self._answer(api, request, account)
            refused = self._deny(api, account) or self._check_key(api, request, [account])
        else:
            if not api.authenticated:
                return await self._answer(api, request, None)
            account = self._shared_host_account(shape, params.get("region", ""), api, request)
            refused = self._unauthorized(api) if account is None else self._deny(api, account)
        if refused is not None:
            return refused
        assert account is not None
        if api.region_scoped and not self._region_ok(request, account):
            return self._unauthorized(api)
        return await self._answer(api, request, account)

    # -- checks, in the gateway's order ----------------------------------------------------------------

    def _deny(self, api: Api, account: Account) -> Response | None:
        """Network rules first (a caller outside learns nothing about keys), then disableLocalAuth."""
        if account.network_denied:
            return dataplane_error(403, "403", FIREWALL_MESSAGE, FIREWALL_HEADERS)
        if account.disable_local_auth:
            return dataplane_error(403, "AuthenticationTypeDisabled", LOCAL_AUTH_DISABLED_MESSAGE)
        return None

    def _check_key(self, api: Api, request: Request, accounts: Iterable[Account]) -> Response | None:
        return None if self._account_for_key(api, request, accounts) else self._unauthorized(api)

    def _unauthorized(self, api: Api) -> Response:
        if api.region_scoped:
            return json_response({"error": {"code": 401000, "message": TRANSLATOR_DENIED_MESSAGE}}, 401)
        return dataplane_error(401, "401", DATAPLANE_DENIED_MESSAGE)

    def _presented_key(self, api: Api, request: Request) -> str:
        for header in api.key_headers:
            value = request.headers.get(header)
            if value:
                return value
        return ""

    def _account_for_key(self, api: Api, request: Request, accounts: Iterable[Account]) -> Account | None:
        presented = self._presented_key(api, request)
        if not presented:
            return None
        now = self.emulator.now()
        for account in accounts:
            for key, accepted_from in (
                (account.key1, account.key1_accepted_from),
                (account.key2, account.key2_accepted_from),
            ):
                if hmac.compare_digest(presented.encode(), key.encode()) and now >= accepted_from:
                    return account
        return None

    def _shared_host_account(
        self, shape: Shape, region: str, api: Api, request: Request
    ) -> Account | None:
        """The account whose key was presented, if the shared host knows it: the region's accounts
        (regional), Translator-capable ones (global). Accounts with a custom subdomain are still reachable
        there, as in Azure. Looked up by key (an index), never by scanning every account."""
        candidate = self.emulator.state.accounts.by_key(self._presented_key(api, request))
        if candidate is None or candidate.kind not in api.kinds:
            return None
        if shape is Shape.REGIONAL and candidate.location.lower() != region.lower():
            return None
        return self._account_for_key(api, request, [candidate])

    def _region_ok(self, request: Request, account: Account) -> bool:
        """A regional Translator or multi-service key is refused without its region, even when valid."""
        if account.location.lower() == "global":
            return True
        return request.headers.get(REGION_HEADER, "").strip().lower() == account.location.lower()

    # -- answers ----------------------------------------------------------------------------------------

    async def _answer(self, api: Api, request: Request, account: Account | None) -> Response:
        if api.name == "sts.issueToken":
            assert account is not None
            return Response(_access_token(account), media_type="application/jwt")
        if api.name == "openai.models":
            return json_response({"data": MODELS, "object": "list"})
        if api.name == "openai.chat_completions":
            return json_response(_chat_completion())
        if api.name == "documentintelligence.info":
            return json_response({"customDocumentModels": {"count": 0, "limit": 250}})
        if api.name == "contentsafety.blocklists":
            return json_response({"value": []})
        if api.name == "translator.languages":
            return json_response({"translation": {"en": {"name": "English", "nativeName": "English"}}})
        return json_response(await _translations(request))


def not_found() -> Response:
    # The gateway's own 404 for a path that is no API (MicrosoftDocs/azure-docs#36938, #73060).
    return dataplane_error(404, "404", "Resource not found")


def _access_token(account: Account) -> str:
    """A JWT-shaped, unsigned stand-in valid for 10 minutes. It names the account, never holds the key."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    now = int(time.time())
    claims = {"region": account.location, "subscription-id": account.internal_id, "exp": now + 600}
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.{secrets.token_urlsafe(16)}"


def _chat_completion() -> dict[str, Any]:
    return {
        "id": "chatcmpl-" + secrets.token_hex(8),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": "Emulated answer."},
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
    }


async def _translations(request: Request) -> list[dict[str, Any]]:
    """Echo each text back as its "translation" into every ``to`` language."""
    try:
        items = json.loads(await request.body() or b"[]")
    except ValueError:
        items = []
    targets = request.query_params.getlist("to") or ["en"]
    if not isinstance(items, list):
        items = []
    texts = [str(item.get("Text", "")) for item in items if isinstance(item, dict)]
    return [{"translations": [{"text": text, "to": to} for to in targets]} for text in texts]
