"""The client of the emulator's control API (``EMULATOR_CONTROL_URL``), for tests, the demo and benchmarks.

Runs in the caller's process; the routes it calls are in ``emulator/control_api.py``.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx


class EmulatorError(RuntimeError):
    pass


class ControlError(EmulatorError):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"control API answered {status}: {body}")
        self.status = status
        self.body = body


class ControlClient:
    """The emulator's control API (``EMULATOR_CONTROL_URL``), one method per endpoint."""

    def __init__(self, control_url: str, ca_bundle: str) -> None:
        self.url = control_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url, verify=ssl.create_default_context(cafile=ca_bundle), timeout=30.0
        )

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, body: Any = None, params: Mapping[str, str] | None = None) -> Any:
        response = self._http.request(method, path, json=body, params=params)
        if response.status_code >= 400:
            raise ControlError(response.status_code, response.text)
        return response.json() if response.content else None

    def health(self) -> dict[str, Any]:
        return dict(self._call("GET", "/health"))

    def issued_keys(self) -> set[str]:
        """Every account key the emulator ever issued (for leak scans, I5)."""
        return set(self._call("GET", "/issued-keys")["keys"])

    def add_account(
        self,
        resource_id: str,
        kind: str = "AIServices",
        disable_local_auth: bool = False,
        *,
        location: str | None = None,
        custom_subdomain: bool | None = None,
        network_default_action: str | None = None,
        tags: dict[str, str] | None = None,
        subdomain: str | None = None,
    ) -> dict:
        """``custom_subdomain`` defaults to the kind's usual shape (TextTranslation: the global endpoint);
        ``subdomain`` (customSubDomainName, globally unique) defaults to the account name."""
        body: dict[str, Any] = {"resourceId": resource_id, "kind": kind}
        body["disableLocalAuth"] = disable_local_auth
        optional = {
            "location": location,
            "customSubDomain": custom_subdomain,
            "networkDefaultAction": network_default_action,
            "tags": tags,
            "customSubDomainName": subdomain,
        }
        body.update({name: value for name, value in optional.items() if value is not None})
        return dict(self._call("POST", "/accounts", body))

    def accounts(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/accounts"))

    def account(self, account_name: str) -> dict[str, Any]:
        """The control view of one account (kind, location, endpoint, switches), never its keys."""
        for view in self.accounts():
            if view["name"].lower() == account_name.lower():
                return view
        raise ControlError(404, f"no account named {account_name!r}")

    def set_account(
        self,
        account_name: str,
        *,
        disable_local_auth: bool | None = None,
        custom_subdomain: bool | None = None,
        network_default_action: str | None = None,
    ) -> dict[str, Any]:
        """Flip an account's switches: disableLocalAuth, custom subdomain, networkAcls.defaultAction."""
        fields = {
            "disableLocalAuth": disable_local_auth,
            "customSubDomain": custom_subdomain,
            "networkDefaultAction": network_default_action,
        }
        body = {name: value for name, value in fields.items() if value is not None}
        return dict(self._call("PATCH", f"/accounts/{account_name}", body))

    def set_tags(self, resource_id: str, tags: dict[str, str]) -> dict[str, Any]:
        """Replace an account's tags (as ``az resource tag`` does)."""
        name = resource_id.rstrip("/").rsplit("/", 1)[-1]
        return dict(self._call("PATCH", f"/accounts/{name}", {"resourceId": resource_id, "tags": tags}))

    def delete_account(self, resource_id: str) -> None:
        name = resource_id.rstrip("/").rsplit("/", 1)[-1]
        self._call("DELETE", f"/accounts/{name}?resourceId={quote(resource_id, safe='')}")

    def add_vault(self, name: str, identity_denied: bool = False) -> str:
        """Serve one more vault (own port, secrets and throttling windows); its URL."""
        body = {"name": name, "identityDenied": identity_denied}
        return str(self._call("POST", "/vaults", body)["url"])

    def vaults(self) -> list[dict[str, Any]]:
        """Every vault served, the default first: ``{"name", "url", "identityDenied"}``."""
        return list(self._call("GET", "/vaults"))

    def set_vault_access(self, name: str, identity_denied: bool) -> dict[str, Any]:
        """``True``: the emulated identity has no role on the vault (403 ForbiddenByRbac)."""
        return dict(self._call("PATCH", f"/vaults/{name}", {"identityDenied": identity_denied}))

    def set_disable_local_auth(self, account_name: str, disabled: bool) -> dict[str, Any]:
        return self.set_account(account_name, disable_local_auth=disabled)

    def set_latency(self, seconds: float, operation: str | None = None) -> None:
        body: dict[str, Any] = {"seconds": seconds}
        if operation is not None:
            body["operation"] = operation
        self._call("PUT", "/latency", body)

    def set_propagation(self, seconds: float) -> None:
        self._call("PUT", "/propagation", {"seconds": seconds})

    def set_throttling(self, **limits: float) -> dict[str, Any]:
        """Service limits (any subset): ARM's token buckets (readCapacity, readRefillPerSecond, writeCapacity,
        writeRefillPerSecond, armListPageSize) and Key Vault's windows (vaultSecretWrites,
        vaultOtherTransactions, vaultWindowSeconds)."""
        return dict(self._call("PUT", "/throttling", limits))

    def add_fault(
        self,
        operation: str,
        status: int | None = None,
        count: int = 1,
        retry_after: float | None = None,
        action: str = "status",
        timeout_seconds: float | None = None,
        when: str = "before",
        code: str | None = None,
        path_suffix: str | None = None,
    ) -> dict:
        body: dict[str, Any] = {"operation": operation, "count": count, "action": action, "when": when}
        if status is not None:
            body["status"] = status
        if retry_after is not None:
            body["retryAfter"] = retry_after
        if timeout_seconds is not None:
            body["timeoutSeconds"] = timeout_seconds
        if code is not None:
            body["code"] = code
        if path_suffix is not None:
            body["pathSuffix"] = path_suffix
        return dict(self._call("POST", "/faults", body))

    def faults(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/faults"))

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def advance_clock(self, seconds: float) -> dict[str, Any]:
        return dict(self._call("POST", "/clock", {"advanceSeconds": seconds}))

    def set_clock(self, epoch_seconds: float) -> dict[str, Any]:
        return dict(self._call("POST", "/clock", {"now": epoch_seconds}))

    def clock(self) -> dict[str, Any]:
        return dict(self._call("GET", "/clock"))

    def calls(self) -> dict[str, int]:
        return dict(self._call("GET", "/calls")["counts"])

    def calls_and_throttles(self) -> dict[str, dict[str, int]]:
        """``{"counts": {operation: n}, "throttled": {"arm"|"keyvault": 429s the limits answered}}``."""
        return dict(self._call("GET", "/calls"))

    def reset_calls(self) -> None:
        self._call("DELETE", "/calls")

    def kv_events(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/events"))

    def eventgrid_events(self, topic: str | None = None) -> list[dict[str, Any]]:
        return list(self._call("GET", "/eventgrid/events", params={"topic": topic} if topic else None))

    def reset(self) -> None:
        self._call("POST", "/reset")

    # -- consumers (emulator/consumers.py): App Service sites, API Management named values -------------

    def add_site(self, resource_id: str, app_settings: dict[str, str]) -> dict[str, Any]:
        """A ``Microsoft.Web/sites`` whose app settings may hold ``@Microsoft.KeyVault(…)`` references."""
        return dict(self._call("POST", "/sites", {"resourceId": resource_id, "appSettings": app_settings}))

    def add_named_value(self, resource_id: str, secret_identifier: str) -> dict[str, Any]:
        body = {"resourceId": resource_id, "secretIdentifier": secret_identifier}
        return dict(self._call("POST", "/namedvalues", body))

    def site_app_settings(self, site_name: str) -> dict[str, str]:
        """The site's app settings as its process sees them (references resolved)."""
        return dict(self._call("GET", f"/sites/{quote(site_name, safe='')}/appsettings")["appSettings"])

    def consumers(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/consumers")["consumers"])

    def shape_consumer(
        self, resource_id: str, refresh_delay_seconds: float | None = None, stuck: bool | None = None
    ) -> dict[str, Any]:
        """Make a consumer slow (a refresh takes effect later) or stuck (never picks up a new version)."""
        body: dict[str, Any] = {"resourceId": resource_id}
        if refresh_delay_seconds is not None:
            body["refreshDelaySeconds"] = refresh_delay_seconds
        if stuck is not None:
            body["stuck"] = stuck
        return dict(self._call("PATCH", "/consumers", body))
