"""App Service / Functions / Logic Apps Standard Key Vault references of a site (``Microsoft.Web/sites``).

- refresh: ``POST {site}/config/configreferences/appsettings/refresh`` (Learn, "Use Key Vault references as
  app settings", *Understand rotation*: forces resolution of the app's references). Permission: see
  docs/DEPLOY.md "Consumers" (the 'AI Services Key Rotation Consumer Refresher' role on the site).
- observe: ``GET {site}/config/configreferences/appsettings`` → ``ApiKVReference`` items with ``status``,
  ``vaultName``, ``secretName``, ``activeVersion`` (azure-rest-api-specs Microsoft.Web ``ApiKVReference.tsp``;
  azure-mgmt-web ``ApiKVReferenceProperties``). Permission: ``Microsoft.Web/sites/config/Read``.
"""

from __future__ import annotations

from typing import Any

from rotation.consumers import Consumer
from rotation.ports import ObservedReference
from shared.azure.arm_rest import ArmRest

API_VERSION = "2024-11-01"


class AppServiceReferences:
    def __init__(self, arm: ArmRest) -> None:
        self.arm = arm

    def refresh(self, consumer: Consumer) -> None:
        path = f"{consumer.resource_id}/config/configreferences/appsettings/refresh"
        self.arm.call("POST", path, API_VERSION, "web.refresh_kv_references")

    def observe(self, consumer: Consumer) -> tuple[ObservedReference, ...]:
        path = f"{consumer.resource_id}/config/configreferences/appsettings"
        body = self.arm.call("GET", path, API_VERSION, "web.list_kv_references")
        return tuple(_reference(item.get("properties") or {}) for item in body.get("value") or [])


def _reference(properties: dict[str, Any]) -> ObservedReference:
    status = str(properties.get("status") or "")
    return ObservedReference(
        vault=str(properties.get("vaultName") or "").lower(),
        secret_name=str(properties.get("secretName") or ""),
        resolved=status == "Resolved",
        version=properties.get("activeVersion"),
        detail=status,
    )
