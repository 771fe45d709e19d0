"""ARM ``Microsoft.CognitiveServices/accounts``: get, listKeys, regenerateKey, as azure-mgmt-cognitiveservices
calls them."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulator import arm_listing as listing
from emulator.core import Emulator
from emulator.errors import ARM, arm_error, json_response
from emulator.operations import run_operation
from emulator.state import Account, new_account_key
from emulator.tokens import TokenProblem, TokenRejected

ACCOUNT_PATH = re.compile(
    r"^/subscriptions/(?P<subscription>[^/]+)/resourceGroups/(?P<group>[^/]+)"
    r"/providers/Microsoft\.CognitiveServices/accounts/(?P<name>[^/]+?)(?:/(?P<action>listKeys|regenerateKey))?/?$",
    re.IGNORECASE,
)
LIST_PATH = re.compile(
    r"^/subscriptions/(?P<subscription>[^/]+)(?:/resourceGroups/(?P<group>[^/]+))?"
    r"/providers/Microsoft\.CognitiveServices/accounts/?$",
    re.IGNORECASE,
)
ALLOWED_AUDIENCES_TEXT = (
    "'https://management.core.windows.net/','https://management.core.windows.net',"
    "'https://management.azure.com/','https://management.azure.com'"
)


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _etag(account: Account) -> uuid.UUID:
    # Changes whenever a property a client can see changes.
    seen = (account.disable_local_auth, account.custom_subdomain, account.network_default_action)
    return uuid.uuid5(uuid.NAMESPACE_URL, account.resource_id + repr(seen))


def account_envelope(emulator: Emulator, account: Account) -> dict[str, Any]:
    endpoint = emulator.account_endpoint(account)
    created = _iso(account.created)
    properties: dict[str, Any] = {
        "endpoint": endpoint,
        "internalId": account.internal_id,
        "dateCreated": created,
        "provisioningState": "Succeeded",
        "customSubDomainName": account.name if account.custom_subdomain else None,
        "publicNetworkAccess": "Enabled",
        "disableLocalAuth": account.disable_local_auth,
        "networkAcls": {
            "defaultAction": account.network_default_action,
            "virtualNetworkRules": [],
            "ipRules": [],
        },
        "capabilities": [],
        "isMigrated": False,
    }
    if account.kind in ("OpenAI", "AIServices") and account.custom_subdomain:
        properties["endpoints"] = {"OpenAI Language Model Instance API": endpoint}
    return {
        "id": account.resource_id,
        "name": account.name,
        "type": "Microsoft.CognitiveServices/accounts",
        "etag": f'"{_etag(account)}"',
        "location": account.location,
        "sku": {"name": "S0"},
        "kind": account.kind,
        "tags": dict(account.tags),
        "properties": properties,
        "systemData": {
            "createdAt": created,
            "createdByType": "Application",
            "lastModifiedAt": created,
            "lastModifiedByType": "Application",
        },
    }


class ArmCognitiveServices:
    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    def routes(self) -> list[Route]:
        return [
            Route("/subscriptions", self.list_subscriptions, methods=["GET"]),
            Route(
                "/subscriptions/{rest:path}", self.dispatch, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]
            ),
        ]

    async def list_subscriptions(self, request: Request) -> Response:
        async def handler(req: Request) -> Response:
            return self._guarded(req, None, "reads") or listing.subscriptions_page(self.emulator, req)

        return await run_operation(self.emulator, request, "arm.list_subscriptions", ARM, handler)

    async def dispatch(self, request: Request) -> Response:
        listed = LIST_PATH.match(request.url.path)
        if listed is not None and request.method == "GET":

            async def list_handler(req: Request) -> Response:
                assert listed is not None
                return self._guarded(req, listed["subscription"], "reads") or listing.accounts_page(
                    self.emulator, req, listed["subscription"], listed["group"]
                )

            return await run_operation(self.emulator, request, "arm.list_accounts", ARM, list_handler)
        match = ACCOUNT_PATH.match(request.url.path)
        if match is None:
            return arm_error(
                404,
                "InvalidResourceType",
                "The resource type could not be found in the namespace for api version "
                f"'{request.query_params.get('api-version', '')}'. (emulated: only "
                "Microsoft.CognitiveServices/accounts get/listKeys/regenerateKey exist)",
            )
        action = (match["action"] or "").lower()
        routes = {
            ("GET", ""): "arm.get_account",
            ("POST", "listkeys"): "arm.list_keys",
            ("POST", "regeneratekey"): "arm.regenerate_key",
        }
        operation = routes.get((request.method, action))
        if operation is None:
            return arm_error(
                405,
                "HttpMethodNotAllowed",
                f"The requested resource does not support http method '{request.method}'.",
            )

        async def handler(req: Request) -> Response:
            return await self._handle(req, operation, match)

        return await run_operation(self.emulator, request, operation, ARM, handler)

    def _authenticate(self, request: Request) -> Response | None:
        try:
            self.emulator.tokens.check_authorization(
                request.headers.get("authorization"), self.emulator.arm_audiences
            )
        except TokenRejected as rejected:
            if rejected.problem is TokenProblem.MISSING:
                return arm_error(
                    401,
                    "AuthenticationFailed",
                    "Authentication failed. The 'Authorization' header is missing.",
                    {
                        "WWW-Authenticate": 'Bearer authorization_uri="https://login.windows.net/", '
                        'error="invalid_token", error_description="The authentication failed because '
                        "of missing 'Authorization' header.\""
                    },
                )
            if rejected.problem is TokenProblem.EXPIRED:
                return arm_error(
                    401,
                    "ExpiredAuthenticationToken",
                    "The access token expiry UTC time is earlier than current UTC time.",
                )
            if rejected.problem is TokenProblem.WRONG_AUDIENCE:
                return arm_error(
                    401,
                    "InvalidAuthenticationTokenAudience",
                    f"The access token has been obtained for wrong audience or resource "
                    f"'{rejected.audience}'. It should exactly match with one of the allowed "
                    f"audiences {ALLOWED_AUDIENCES_TEXT} (or this emulator's "
                    f"'{self.emulator.config.base_url}').",
                )
            return arm_error(401, "InvalidAuthenticationToken", "The access token is invalid.")
        return None

    def _guarded(self, request: Request, subscription: str | None, kind: str) -> Response | None:
        """Authentication, api-version and ARM's throttling, in that order; None when the call may run."""
        denied = self._authenticate(request)
        if denied is not None:
            return denied
        if not request.query_params.get("api-version"):
            return arm_error(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        if subscription is None:
            return None
        verdict = self.emulator.knobs.throttle(subscription, kind, self._principal(request))
        request.state.limit_headers = verdict.headers
        if not verdict.allowed:
            return arm_error(
                429,
                "SubscriptionRequestsThrottled",
                f"Number of '{kind[:-1]}' requests for subscription '{subscription}' actor "
                f"'{self._principal(request)}' exceeded. Please try again after '{verdict.retry_after}' "
                "seconds after the first request. For more information, see https://aka.ms/armthrottling",
                {**verdict.headers, "Retry-After": str(verdict.retry_after)},
            )
        return None

    def _principal(self, request: Request) -> str:
        """The caller's object id (ARM's buckets are per principal): from the token the check accepted."""
        try:
            claims = self.emulator.tokens.check_authorization(
                request.headers.get("authorization"), self.emulator.arm_audiences
            )
        except TokenRejected:
            return "anonymous"
        return str(claims.get("oid") or "anonymous")

    async def _handle(self, request: Request, operation: str, match: re.Match[str]) -> Response:
        kind = "reads" if request.method == "GET" else "writes"
        refused = self._guarded(request, match["subscription"], kind)
        if refused is not None:
            return refused
        limit_header = dict(request.state.limit_headers)
        resource_id = (
            f"/subscriptions/{match['subscription']}/resourceGroups/{match['group']}"
            f"/providers/Microsoft.CognitiveServices/accounts/{match['name']}"
        )
        account = self.emulator.state.accounts.get(resource_id.lower())
        if account is None:
            return arm_error(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.CognitiveServices/accounts/{match['name']}' under "
                f"resource group '{match['group']}' was not found. For more details please go to "
                "https://aka.ms/ARMResourceNotFoundFix",
                limit_header,
            )
        headers = {**limit_header, "x-ms-request-id": str(uuid.uuid4())}
        if operation == "arm.get_account":
            return json_response(account_envelope(self.emulator, account), headers=headers)
        if operation == "arm.list_keys":
            if account.disable_local_auth:
                return arm_error(
                    400, "BadRequest", "Failed to list key. disableLocalAuth is set to be true", limit_header
                )
            return json_response({"key1": account.key1, "key2": account.key2}, headers=headers)
        return await self._regenerate(request, account, headers, limit_header)

    async def _regenerate(
        self, request: Request, account: Account, headers: dict[str, str], limit_header: dict[str, str]
    ) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        if not isinstance(body, dict) or "keyName" not in body:
            return arm_error(
                400,
                "InvalidRequestContent",
                "The request content was invalid and could not be deserialized: "
                "required property 'keyName' is missing.",
                limit_header,
            )
        key_name = body["keyName"]
        if not isinstance(key_name, str) or key_name.lower() not in ("key1", "key2"):
            return arm_error(
                400,
                "BadRequest",
                f"Invalid keyName {key_name!r}. Valid values are 'Key1' and 'Key2'.",
                limit_header,
            )
        if account.disable_local_auth:
            return arm_error(
                400,
                "BadRequest",
                "Failed to regenerate key. disableLocalAuth is set to be true",
                limit_header,
            )
        accepted_from = self.emulator.now() + self.emulator.state.propagation_seconds
        slot = key_name.lower()
        # through the account table, whose key index the shared data-plane hosts look keys up in
        self.emulator.state.accounts.rekey(account, slot, new_account_key())
        if slot == "key1":
            account.key1_accepted_from = accepted_from
        else:
            account.key2_accepted_from = accepted_from
        self.emulator.persist()
        return json_response({"key1": account.key1, "key2": account.key2}, headers=headers)
