"""ARM list operations: the subscriptions the caller can see (``GET /subscriptions``) and the Cognitive
Services accounts of a subscription or resource group (``Accounts_List``, ``Accounts_ListByResourceGroup``),
paged with ``nextLink`` as ARM pages them: ``{"value": [...], "nextLink": "<absolute URL>"}``, the last page
without a ``nextLink``."""

from __future__ import annotations

import base64
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from emulator.core import Emulator
from emulator.errors import arm_error, json_response


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(str(offset).encode()).decode().rstrip("=")


def _offset(request: Request) -> int | None:
    token = request.query_params.get("$skipToken")
    if not token:
        return 0
    try:
        return int(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode())
    except ValueError:
        return None


def _page(request: Request, items: list[dict[str, object]], page_size: int) -> Response:
    offset = _offset(request)
    if offset is None or offset < 0:
        return arm_error(400, "InvalidSkipToken", "The $skipToken is not valid.")
    page = items[offset : offset + page_size]
    body: dict[str, object] = {"value": page}
    if offset + page_size < len(items):
        api_version = quote(request.query_params.get("api-version", ""))
        body["nextLink"] = (
            f"{request.url.scheme}://{request.url.netloc}{request.url.path}"
            f"?api-version={api_version}&$skipToken={_token(offset + page_size)}"
        )
    return json_response(body, headers=dict(getattr(request.state, "limit_headers", {})))


def accounts_page(emulator: Emulator, request: Request, subscription: str, group: str | None) -> Response:
    from emulator.arm import account_envelope  # arm.py imports this module

    accounts = sorted(
        (
            account
            for account in emulator.state.accounts.values()
            if account.subscription_id.lower() == subscription.lower()
            and (group is None or account.resource_group.lower() == group.lower())
        ),
        key=lambda account: account.resource_id.lower(),
    )
    if group is not None and not accounts and not _group_known(emulator, subscription, group):
        return arm_error(
            404, "ResourceGroupNotFound", f"Resource group '{group}' could not be found."
        )
    items = [account_envelope(emulator, account) for account in accounts]
    return _page(request, items, int(emulator.knobs.limits.arm_list_page_size))


def _group_known(emulator: Emulator, subscription: str, group: str) -> bool:
    config = emulator.config
    return (
        subscription.lower() == config.vault_subscription_id.lower()
        and group.lower() == config.vault_resource_group.lower()
    )


def subscriptions_page(emulator: Emulator, request: Request) -> Response:
    """Every subscription that holds an account, plus the vault's: what the identity can see here."""
    ids = {account.subscription_id.lower() for account in emulator.state.accounts.values()}
    ids.add(emulator.config.vault_subscription_id.lower())
    items: list[dict[str, object]] = [
        {
            "id": f"/subscriptions/{sub}",
            "authorizationSource": "RoleBased",
            "managedByTenants": [],
            "subscriptionId": sub,
            "tenantId": emulator.config.tenant_id,
            "displayName": f"emulated subscription {sub}",
            "state": "Enabled",
            "subscriptionPolicies": {
                "locationPlacementId": "Public_2014-09-01",
                "quotaId": "PayAsYouGo_2014-09-01",
                "spendingLimit": "Off",
            },
        }
        for sub in sorted(ids)
    ]
    return _page(request, items, int(emulator.knobs.limits.arm_list_page_size))
