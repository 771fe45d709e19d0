"""ARM Cognitive Services adapter (azure-mgmt-cognitiveservices). One management client per subscription,
built once and shared by every target of that subscription.

Permissions on each account: Microsoft.CognitiveServices/accounts/read, .../listKeys/action and
.../regenerateKey/action (e.g. "Cognitive Services Contributor", or the least-privilege role in infra/).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, cast

from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError, HttpResponseError
from azure.mgmt.cognitiveservices import CognitiveServicesManagementClient

from rotation.errors import KeylessAccount
from rotation.model import SecretValue, Slot, parse_resource_id
from rotation.ports import AccountInfo, AccountKeys, DiscoveredAccount, KeyService, WriteRateLimiter
from shared.azure.errors import retry_after_seconds, translate


class CognitiveServicesKeys(KeyService):
    def __init__(
        self,
        credential: TokenCredential,
        arm_endpoint: str,
        arm_scope: str,
        limiter: WriteRateLimiter,
        client_options: dict[str, Any] | None = None,
        client_factory: Callable[[str], CognitiveServicesManagementClient] | None = None,
    ) -> None:
        """``client_factory(subscription_id)`` builds a subscription's client instead (the asynchronous
        path: the ``.aio`` client behind a ``shared.aio_loop.BlockingClient``, same methods)."""
        self.credential = credential
        self.arm_endpoint = arm_endpoint.rstrip("/")
        self.arm_scope = arm_scope  # Settings.arm_scope: {ARM_ENDPOINT}/.default
        self.limiter = limiter
        self.client_options = client_options or {}
        self.client_factory = client_factory
        self._clients: dict[str, CognitiveServicesManagementClient] = {}
        self._lock = threading.Lock()

    def _client(self, subscription_id: str) -> CognitiveServicesManagementClient:
        with self._lock:
            client = self._clients.get(subscription_id)
            if client is None and self.client_factory is not None:
                client = self._clients[subscription_id] = self.client_factory(subscription_id)
            if client is None:
                client = CognitiveServicesManagementClient(
                    self.credential,
                    subscription_id,
                    base_url=self.arm_endpoint,
                    credential_scopes=[self.arm_scope],
                    **self.client_options,
                )
                self._clients[subscription_id] = client
            return client

    def _fail(self, error: AzureError | OSError, operation: str, subscription_id: str) -> Exception:
        if isinstance(error, HttpResponseError) and error.status_code == 429:
            self.limiter.penalize(subscription_id, retry_after_seconds(error) or 10.0)
        return translate(error, operation, self.arm_endpoint)

    def get_account(self, resource_id: str) -> AccountInfo:
        """GET account. Permission: Microsoft.CognitiveServices/accounts/read."""
        sub, rg, name = parse_resource_id(resource_id)
        try:
            account = self._client(sub).accounts.get(rg, name)
        except (AzureError, OSError) as error:
            raise self._fail(error, "arm.get_account", sub) from None
        properties = account.properties
        return AccountInfo(
            resource_id=resource_id,
            kind=account.kind or "",
            endpoint=properties.endpoint if properties else None,
            disable_local_auth=bool(properties and properties.disable_local_auth),
            location=account.location,
            # Without a custom subdomain the endpoint is the shared regional (or global Translator) host.
            custom_subdomain=bool(properties and properties.custom_sub_domain_name),
        )

    def list_keys(self, resource_id: str) -> AccountKeys:
        """POST listKeys. Permission: Microsoft.CognitiveServices/accounts/listKeys/action."""
        sub, rg, name = parse_resource_id(resource_id)
        try:
            keys = self._client(sub).accounts.list_keys(rg, name)
        except HttpResponseError as error:
            if error.status_code == 400 and self._local_auth_disabled(resource_id):
                raise KeylessAccount(f"{name}: local authentication is disabled (disableLocalAuth)") from None
            raise self._fail(error, "arm.list_keys", sub) from None
        except (AzureError, OSError) as error:
            raise self._fail(error, "arm.list_keys", sub) from None
        return AccountKeys(SecretValue(keys.key1 or ""), SecretValue(keys.key2 or ""))

    def regenerate_key(self, resource_id: str, slot: Slot) -> AccountKeys | None:
        """POST regenerateKey. Permission: Microsoft.CognitiveServices/accounts/regenerateKey/action.

        Its response carries both keys (``ApiKeys``, the REST spec's ``RegenerateKey.json`` example). They
        are returned when azure-core sent the POST once; when its retry policy sent it again (the pipeline
        context's ``history``), the response may answer an earlier POST than the one that won, so None:
        the caller reads the current values with ``list_keys``.
        """
        sub, rg, name = parse_resource_id(resource_id)
        try:
            answered = self._client(sub).accounts.regenerate_key(
                rg, name, key_name=slot.arm_name, cls=_keys_if_sent_once
            )
            return cast(AccountKeys | None, answered)  # what ``cls`` returns, not the typed ``ApiKeys``
        except HttpResponseError as error:
            if error.status_code == 400 and self._local_auth_disabled(resource_id):
                raise KeylessAccount(f"{name}: local authentication is disabled (disableLocalAuth)") from None
            raise self._fail(error, "arm.regenerate_key", sub) from None
        except (AzureError, OSError) as error:
            raise self._fail(error, "arm.regenerate_key", sub) from None

    def list_accounts(self, subscription_id: str) -> list[DiscoveredAccount]:
        """GET Accounts_List (paged by nextLink). Permission: Microsoft.CognitiveServices/accounts/read at
        the subscription (or on the accounts: ARM lists only what the caller can read)."""
        try:
            return [
                DiscoveredAccount(account.id or "", dict(account.tags or {}))
                for account in self._client(subscription_id).accounts.list()
                if account.id
            ]
        except AzureError as error:
            raise translate(error, "arm.list_accounts") from None

    def _local_auth_disabled(self, resource_id: str) -> bool:
        # A 400 alone says nothing (the error code is a generic BadRequest): ask the account's properties.
        try:
            return self.get_account(resource_id).disable_local_auth
        except Exception:
            return False


def _keys_if_sent_once(pipeline_response: Any, keys: Any, _headers: Any) -> AccountKeys | None:
    """The generated operation's ``cls`` hook (the lean call's too): the keys of the response, unless the
    retry policy sent the POST more than once."""
    if pipeline_response.context.get("history") or keys is None:
        return None
    return AccountKeys(SecretValue(keys.key1 or ""), SecretValue(keys.key2 or ""))
