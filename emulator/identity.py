"""The App Service / Functions managed-identity endpoint (``IDENTITY_ENDPOINT`` + ``IDENTITY_HEADER``)."""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulator.core import Emulator
from emulator.errors import IDENTITY, identity_error, json_response
from emulator.operations import run_operation

API_VERSION = "2019-08-01"


class ManagedIdentity:
    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    def routes(self) -> list[Route]:
        return [Route("/msi/token", self.endpoint, methods=["GET"])]

    async def endpoint(self, request: Request) -> Response:
        return await run_operation(self.emulator, request, "identity.token", IDENTITY, self.issue)

    async def issue(self, request: Request) -> Response:
        header = request.headers.get("x-identity-header")
        if header is None:
            return identity_error(400, "The X-IDENTITY-HEADER request header is missing.")
        if not hmac.compare_digest(header.encode(), self.emulator.state.identity_header.encode()):
            return identity_error(401, "The X-IDENTITY-HEADER request header does not match IDENTITY_HEADER.")
        if request.query_params.get("api-version") != API_VERSION:
            return identity_error(400, f"The api-version query parameter must be {API_VERSION}.")
        resource = request.query_params.get("resource")
        if not resource:
            return identity_error(400, "The resource query parameter is required.")
        client_id = request.query_params.get("client_id")
        token = self.emulator.tokens.issue(resource, client_id)
        return json_response(
            {
                "access_token": token.access_token,
                "expires_on": str(token.expires_on),
                "resource": token.resource,
                "token_type": "Bearer",
                "client_id": client_id or self.emulator.config.principal_id,
            }
        )
