"""Azure Resource Manager beyond one provider: the subscriptions the identity can see, and the account
directory discovery reads (every Cognitive Services account of the subscriptions in scope).

The subscription list is plain ARM (``GET /subscriptions?api-version=2022-12-01``, paged by ``nextLink``)
sent through an azure-core pipeline with ARM's challenge-aware bearer policy and azure-core's retry
(which honours Retry-After), so no SDK is added for one call. Permission: any role on a subscription makes it
visible (e.g. the custom rotation role assigned at that scope).
"""

from __future__ import annotations

from typing import Any

from azure.core import PipelineClient
from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError, HttpResponseError
from azure.core.pipeline.policies import RetryPolicy
from azure.core.rest import HttpRequest
from azure.mgmt.core.policies import ARMChallengeAuthenticationPolicy

from rotation.ports import AccountDirectory, DiscoveredAccount
from shared.azure.cognitive_services import CognitiveServicesKeys
from shared.azure.errors import translate

SUBSCRIPTIONS_API_VERSION = "2022-12-01"


class ArmAccountDirectory(AccountDirectory):
    def __init__(
        self,
        credential: TokenCredential,
        accounts: CognitiveServicesKeys,
        scopes: tuple[str, ...] = (),
        client_options: dict[str, Any] | None = None,
    ) -> None:
        self.scopes = scopes
        self.accounts = accounts
        self.arm_endpoint = accounts.arm_endpoint
        options = dict(client_options or {})
        self._timeouts = {k: options[k] for k in ("connection_timeout", "read_timeout") if k in options}
        self._pipeline: PipelineClient[HttpRequest, Any] = PipelineClient(
            self.arm_endpoint,
            policies=[
                RetryPolicy(retry_total=options.get("retry_total", 3)),
                ARMChallengeAuthenticationPolicy(credential, accounts.arm_scope),
            ],
            # the composition root's transport (CA bundle passed once, no per-request environment reads)
            **({"transport": options["transport"]} if "transport" in options else {}),
        )

    def list_subscriptions(self) -> list[str]:
        """Enabled subscriptions the identity can see (paged). Permission: a role at the subscription."""
        found: list[str] = []
        url: str | None = f"{self.arm_endpoint}/subscriptions?api-version={SUBSCRIPTIONS_API_VERSION}"
        try:
            while url:
                response = self._pipeline.send_request(HttpRequest("GET", url), **self._timeouts)
                if response.status_code != 200:
                    raise HttpResponseError(response=response)
                page = response.json()
                found += [
                    item["subscriptionId"]
                    for item in page.get("value", [])
                    if item.get("subscriptionId") and item.get("state", "Enabled") in ("Enabled", "PastDue")
                ]
                url = page.get("nextLink")
        except AzureError as error:
            raise translate(error, "arm.list_subscriptions") from None
        return found

    def list_accounts(self) -> list[DiscoveredAccount]:
        """Every account in scope. One failing subscription fails the listing (see the port)."""
        subscriptions = self.scopes or tuple(self.list_subscriptions())
        return [account for sub in subscriptions for account in self.accounts.list_accounts(sub)]
