"""Key Vault secrets adapter (azure-keyvault-secrets). Needs the "Key Vault Secrets Officer" role on the
vault (get + set)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.keyvault.secrets import SecretClient

from rotation.model import SecretValue
from rotation.ports import SecretStore, StoredSecret
from shared.azure_errors import translate


class KeyVaultSecretStore(SecretStore):
    def __init__(self, client: SecretClient) -> None:
        self.client = client

    def get_secret(self, name: str) -> StoredSecret | None:
        """GET /secrets/{name}/ (latest). Permission: secrets/get."""
        try:
            secret = self.client.get_secret(name)
        except ResourceNotFoundError:
            return None
        except AzureError as error:
            raise translate(error, "keyvault.get_secret") from None
        return StoredSecret(
            name=name,
            value=SecretValue(secret.value or ""),
            version=secret.properties.version or "",
            tags=dict(secret.properties.tags or {}),
            expires_on=secret.properties.expires_on,
        )

    def set_secret(
        self, name: str, value: SecretValue, tags: Mapping[str, str], expires_on: datetime | None = None
    ) -> str:
        """PUT /secrets/{name}. Permission: secrets/set."""
        try:
            secret = self.client.set_secret(
                name, value.reveal(), tags=dict(tags), expires_on=expires_on, content_type="text/plain"
            )
        except AzureError as error:
            # ``from None``: the SDK error's context must not drag the request into a traceback.
            raise translate(error, "keyvault.set_secret") from None
        return secret.properties.version or ""
