"""The control API under ``/_emulator`` (JSON, loopback only, no auth): seed accounts, shape behaviour,
inject faults, move the clock and read what happened. Bad input gets a 400 and changes nothing."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulator.arm import account_envelope
from emulator.core import Emulator
from emulator.errors import json_response
from emulator.knobs import Fault, InvalidControl
from emulator.state import KEYS_ISSUED_HERE, NETWORK_ACTIONS, Account, InvalidAccount, validated_tags

# What PATCH /accounts/{name} can change (and POST /accounts can set), with each value's check.
ACCOUNT_FIELDS: dict[str, Callable[[Any], bool]] = {
    "disableLocalAuth": lambda value: isinstance(value, bool),
    "customSubDomain": lambda value: isinstance(value, bool),
    "networkDefaultAction": lambda value: value in NETWORK_ACTIONS,
    "tags": lambda value: isinstance(value, dict),  # replaces every tag (as ARM's PUT/PATCH tags does)
}


def _error(status: int, message: str) -> Response:
    return json_response(
        {"error": {"code": "InvalidControlRequest" if status == 400 else "NotFound", "message": message}},
        status,
    )


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else {}
    except ValueError as error:
        raise InvalidControl("body is not valid JSON") from error
    if not isinstance(body, dict):
        raise InvalidControl("body must be a JSON object")
    return body


class ControlApi:
    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        # Run by POST /reset before the state is emptied (e.g. stop the servers of added vaults).
        self.reset_hooks: list[Callable[[], Awaitable[None]]] = []

    def routes(self) -> list[Route]:
        p = "/_emulator"
        w = self._wrap
        return [
            Route(f"{p}/health", self.health, methods=["GET"]),
            Route(f"{p}/accounts", w(self.list_accounts), methods=["GET"]),
            Route(f"{p}/accounts", w(self.add_account), methods=["POST"]),
            Route(f"{p}/accounts/{{name}}", w(self.patch_account), methods=["PATCH"]),
            Route(f"{p}/accounts/{{name}}", w(self.delete_account), methods=["DELETE"]),
            Route(f"{p}/latency", w(self.set_latency), methods=["PUT"]),
            Route(f"{p}/propagation", w(self.set_propagation), methods=["PUT"]),
            Route(f"{p}/throttling", w(self.set_throttling), methods=["PUT"]),
            Route(f"{p}/faults", w(self.list_faults), methods=["GET"]),
            Route(f"{p}/faults", w(self.add_fault), methods=["POST"]),
            Route(f"{p}/faults", w(self.clear_faults), methods=["DELETE"]),
            Route(f"{p}/clock", w(self.get_clock), methods=["GET"]),
            Route(f"{p}/clock", w(self.move_clock), methods=["POST"]),
            Route(f"{p}/calls", w(self.get_calls), methods=["GET"]),
            Route(f"{p}/calls", w(self.reset_calls), methods=["DELETE"]),
            Route(f"{p}/issued-keys", w(self.issued_keys), methods=["GET"]),
            Route(f"{p}/events", w(self.kv_events), methods=["GET"]),
            Route(f"{p}/eventgrid/events", w(self.eventgrid_events), methods=["GET"]),
            Route(f"{p}/reset", w(self.reset), methods=["POST"]),
        ]

    @staticmethod
    def _wrap(handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            try:
                response: Response = await handler(request)
                return response
            except (InvalidControl, InvalidAccount) as error:
                return _error(400, str(error))

        return endpoint

    async def health(self, request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    # -- accounts -----------------------------------------------------------------------------------

    def _account_view(self, account: Account) -> dict[str, Any]:
        envelope = account_envelope(self.emulator, account)
        return {
            "resourceId": account.resource_id,
            "name": account.name,
            "kind": account.kind,
            "location": account.location,
            "endpoint": envelope["properties"]["endpoint"],
            "disableLocalAuth": account.disable_local_auth,
            "customSubDomain": account.custom_subdomain,
            "networkDefaultAction": account.network_default_action,
            "customSubDomainName": account.host_name,
            "tags": dict(account.tags),
        }

    async def list_accounts(self, request: Request) -> Response:
        return json_response([self._account_view(a) for a in self.emulator.state.accounts.values()])

    def add_account_from(
        self,
        resource_id: Any,
        kind: Any = "AIServices",
        disable_local_auth: Any = False,
        location: Any = "eastus",
        custom_subdomain: Any = None,
        network_default_action: Any = "Allow",
        tags: Any = None,
        subdomain: Any = None,
    ) -> Account:
        if not isinstance(resource_id, str):
            raise InvalidAccount("resourceId is required and must be a string")
        if not isinstance(kind, str):
            raise InvalidAccount("kind must be a string")
        if not isinstance(disable_local_auth, bool):
            raise InvalidAccount("disableLocalAuth must be a boolean")
        if not isinstance(location, str):
            raise InvalidAccount("location must be a string")
        if custom_subdomain is not None and not isinstance(custom_subdomain, bool):
            raise InvalidAccount("customSubDomain must be a boolean")
        if not isinstance(network_default_action, str):
            raise InvalidAccount("networkDefaultAction must be a string")
        if subdomain is not None and not isinstance(subdomain, str):
            raise InvalidAccount("customSubDomainName must be a string")
        account = Account.create(
            resource_id,
            kind,
            disable_local_auth,
            self.emulator.now(),
            location,
            custom_subdomain,
            network_default_action,
            tags if tags is not None else {},
            subdomain,
        )
        state = self.emulator.state
        if account.resource_id.lower() in state.accounts:
            raise InvalidAccount(f"account {account.resource_id} already exists")
        if state.account_by_subdomain(account.host_name) is not None:
            # Account names repeat across resource groups and subscriptions, as in Azure; the custom
            # subdomain is a DNS name and globally unique.
            raise InvalidAccount(
                f"custom subdomain {account.host_name!r} is already taken; give this account its own "
                "customSubDomainName"
            )
        state.accounts[account.resource_id.lower()] = account
        self.emulator.persist()
        return account

    async def add_account(self, request: Request) -> Response:
        body = await _body(request)
        unknown = set(body) - {*ACCOUNT_FIELDS, "resourceId", "kind", "location", "customSubDomainName"}
        if unknown:
            raise InvalidControl(f"unknown account field(s) {sorted(unknown)}")
        account = self.add_account_from(
            body.get("resourceId"),
            body.get("kind", "AIServices"),
            body.get("disableLocalAuth", False),
            body.get("location", "eastus"),
            body.get("customSubDomain"),
            body.get("networkDefaultAction", "Allow"),
            body.get("tags"),
            body.get("customSubDomainName"),
        )
        return json_response(self._account_view(account), 201)

    def _select(self, name: str, resource_id: Any) -> Account | Response:
        """``/accounts/{name}``; ``resourceId`` (body or query) picks one of several same-named accounts."""
        state = self.emulator.state
        if resource_id is not None:
            if not isinstance(resource_id, str):
                raise InvalidControl("resourceId must be a string")
            account = state.accounts.get(resource_id.strip().rstrip("/").lower())
            if account is None or account.name.lower() != name.lower():
                return _error(404, f"no account {resource_id!r} named {name!r}")
            return account
        named = state.accounts_named(name)
        if not named:
            return _error(404, f"no account named {name!r}")
        if len(named) > 1:
            raise InvalidControl(f"{len(named)} accounts are named {name!r}; give resourceId to choose one")
        return named[0]

    async def delete_account(self, request: Request) -> Response:
        """Delete an account (as ``az cognitiveservices account delete``): ARM then answers 404 for it and
        its keys stop working."""
        account = self._select(request.path_params["name"], request.query_params.get("resourceId"))
        if isinstance(account, Response):
            return account
        del self.emulator.state.accounts[account.resource_id.lower()]
        self.emulator.persist()
        return Response(status_code=204)

    async def patch_account(self, request: Request) -> Response:
        body = await _body(request)
        account = self._select(request.path_params["name"], body.pop("resourceId", None))
        if isinstance(account, Response):
            return account
        if not body or set(body) - set(ACCOUNT_FIELDS):
            raise InvalidControl(f"give one or more of {sorted(ACCOUNT_FIELDS)}")
        for name, check in ACCOUNT_FIELDS.items():
            if name in body and not check(body[name]):
                raise InvalidControl(f"{name} has an invalid value {body[name]!r}")
        tags = validated_tags(body["tags"]) if "tags" in body else None
        # Validated all first: a bad request changes nothing.
        if "disableLocalAuth" in body:
            account.disable_local_auth = body["disableLocalAuth"]
        if "customSubDomain" in body:
            account.custom_subdomain = body["customSubDomain"]
        if "networkDefaultAction" in body:
            account.network_default_action = body["networkDefaultAction"]
        if tags is not None:
            account.tags = tags
        self.emulator.persist()
        return json_response(self._account_view(account))

    # -- behaviour ----------------------------------------------------------------------------------

    async def set_latency(self, request: Request) -> Response:
        body = await _body(request)
        self.emulator.knobs.set_latency(body.get("seconds"), body.get("operation"))
        return json_response(
            {"default": self.emulator.knobs.default_latency, "operations": self.emulator.knobs.latency}
        )

    async def set_propagation(self, request: Request) -> Response:
        seconds = (await _body(request)).get("seconds")
        if not isinstance(seconds, int | float) or not 0 <= seconds <= 3600:
            raise InvalidControl(f"seconds must be a number 0-3600, got {seconds!r}")
        self.emulator.state.propagation_seconds = float(seconds)
        self.emulator.persist()
        return json_response({"seconds": self.emulator.state.propagation_seconds})

    async def set_throttling(self, request: Request) -> Response:
        self.emulator.knobs.set_limits(await _body(request))
        return json_response(self.emulator.knobs.limits_json())

    async def list_faults(self, request: Request) -> Response:
        return json_response([fault.to_json() for fault in self.emulator.knobs.faults])

    async def add_fault(self, request: Request) -> Response:
        fault = Fault.from_json(await _body(request))
        self.emulator.knobs.faults.append(fault)
        return json_response(fault.to_json(), 201)

    async def clear_faults(self, request: Request) -> Response:
        self.emulator.knobs.faults.clear()
        return Response(status_code=204)

    # -- clock --------------------------------------------------------------------------------------

    async def get_clock(self, request: Request) -> Response:
        return json_response({"now": self.emulator.now(), "offsetSeconds": self.emulator.state.clock_offset})

    async def move_clock(self, request: Request) -> Response:
        body = await _body(request)
        advance, now = body.get("advanceSeconds"), body.get("now")
        if (advance is None) == (now is None):
            raise InvalidControl("give exactly one of advanceSeconds or now")
        value = advance if advance is not None else now
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidControl("advanceSeconds/now must be a number")
        if advance is not None:
            self.emulator.state.clock_offset += float(advance)
        else:
            self.emulator.state.clock_offset = float(value) - time.time()
        self.emulator.persist()
        self.emulator.evaluate_events()
        return json_response({"now": self.emulator.now(), "offsetSeconds": self.emulator.state.clock_offset})

    # -- observations -------------------------------------------------------------------------------

    async def get_calls(self, request: Request) -> Response:
        knobs = self.emulator.knobs
        return json_response({"counts": dict(knobs.calls), "throttled": dict(knobs.throttled)})

    async def issued_keys(self, request: Request) -> Response:
        """Every account key this emulator ever issued: the test suite's leak scan (I5) greps for them."""
        return json_response({"keys": sorted(KEYS_ISSUED_HERE)})

    async def reset_calls(self, request: Request) -> Response:
        self.emulator.knobs.calls.clear()
        self.emulator.knobs.throttled.clear()
        return Response(status_code=204)

    async def kv_events(self, request: Request) -> Response:
        return json_response(self.emulator.state.kv_events)

    async def eventgrid_events(self, request: Request) -> Response:
        topic = request.query_params.get("topic")
        return json_response(
            [
                record["event"]
                for record in self.emulator.state.eventgrid_events
                if topic is None or record["topic"] == topic
            ]
        )

    async def reset(self, request: Request) -> Response:
        for hook in self.reset_hooks:
            await hook()
        self.emulator.state.reset()
        self.emulator.knobs.reset()
        self.emulator.persist()
        return Response(status_code=204)
