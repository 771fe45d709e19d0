"""API Management named values backed by Key Vault (``Microsoft.ApiManagement/service/namedValues``).

- refresh: ``POST {named value}/refreshSecret`` (REST "Named Value - Refresh Secret"; 200 with the contract,
  or 202 while it runs). Permission: ``Microsoft.ApiManagement/service/namedValues/refreshSecret/action``.
- observe: ``GET {named value}`` → ``properties.keyVault.secretIdentifier`` and ``keyVault.lastStatus``
  (``code``, ``timeStampUtc``): API Management reports when it last fetched the secret, not which version
  (azure-rest-api-specs ``ApiManagementRefreshNamedValue.json``). Permission:
  ``Microsoft.ApiManagement/service/namedValues/read``.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlparse

from rotation.consumers import Consumer
from rotation.ports import ConsumerObservation, ObservedReference
from shared.azure.arm_rest import ArmRest

API_VERSION = "2024-05-01"


class ApiManagementNamedValues:
    def __init__(self, arm: ArmRest) -> None:
        self.arm = arm

    def refresh(self, consumer: Consumer) -> None:
        self.arm.call("POST", f"{consumer.resource_id}/refreshSecret", API_VERSION, "apim.refresh_secret")

    def observe(self, consumer: Consumer) -> ConsumerObservation:
        body = self.arm.call("GET", consumer.resource_id, API_VERSION, "apim.get_named_value")
        key_vault = (body.get("properties") or {}).get("keyVault") or {}
        status = key_vault.get("lastStatus") or {}
        uri = urlparse(str(key_vault.get("secretIdentifier") or ""))
        parts = [p for p in uri.path.split("/") if p]
        fetched = status.get("timeStampUtc")
        reference = ObservedReference(
            vault=uri.netloc.lower(),
            secret_name=parts[1] if len(parts) >= 2 and parts[0] == "secrets" else "",
            resolved=status.get("code") == "Success",
            detail=str(status.get("code") or ""),
        )
        at = datetime.fromisoformat(fetched.replace("Z", "+00:00")) if fetched else None
        return ConsumerObservation((reference,), at)
