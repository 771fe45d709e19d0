"""Plain ARM REST calls for providers the service touches with one or two operations (App Service Key Vault
references, API Management named values): an azure-core pipeline with ARM's challenge-aware bearer policy
and azure-core's retry (which honours Retry-After), like ``resource_manager``'s subscription list — no
management SDK is added for two calls each. Errors go through the one table in ``shared/azure/errors.py``."""

from __future__ import annotations

from typing import Any

from azure.core import PipelineClient
from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError, HttpResponseError
from azure.core.pipeline.policies import RetryPolicy
from azure.core.rest import HttpRequest
from azure.mgmt.core.policies import ARMChallengeAuthenticationPolicy

from shared.azure.errors import translate
from shared.loop_greenlets import off_loop


class ArmRest:
    def __init__(
        self,
        credential: TokenCredential,
        arm_endpoint: str,
        arm_scope: str,
        client_options: dict[str, Any] | None = None,
    ) -> None:
        self.arm_endpoint = arm_endpoint.rstrip("/")
        options = dict(client_options or {})
        self._timeouts = {k: options[k] for k in ("connection_timeout", "read_timeout") if k in options}
        self._pipeline: PipelineClient[HttpRequest, Any] = PipelineClient(
            self.arm_endpoint,
            policies=[
                RetryPolicy(retry_total=options.get("retry_total", 3)),
                ARMChallengeAuthenticationPolicy(credential, arm_scope),
            ],
            # the composition root's transport (CA bundle passed once, no per-request environment reads)
            **({"transport": options["transport"]} if "transport" in options else {}),
        )

    def call(self, method: str, path: str, api_version: str, operation: str) -> Any:
        """``method`` ``path`` (a resource id plus what follows) → the JSON body; raises domain errors."""
        return self.send(method, f"{self.arm_endpoint}{path}?api-version={api_version}", operation)

    def send(self, method: str, url: str, operation: str) -> Any:
        """``method`` an absolute ``url`` (a ``nextLink``) → the JSON body; raises domain errors."""
        try:
            # synchronous (requests): off the I/O loop's thread when a target's greenlet calls it
            response = off_loop(self._pipeline.send_request, HttpRequest(method, url), **self._timeouts)
            if response.status_code not in (200, 202, 204):
                raise HttpResponseError(response=response)
            text = response.text()
            return response.json() if text.strip() else {}
        except AzureError as error:
            raise translate(error, operation, self.arm_endpoint) from None
