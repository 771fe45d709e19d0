"""Where key material is read from: a port, and its Key Vault adapter."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError

from .errors import KeyVaultReadError, SecretNotFoundError

if TYPE_CHECKING:
    from azure.keyvault.secrets import SecretClient


@dataclass(frozen=True, slots=True)
class SecretRecord:
    """One secret as read: its value (never printed), tags and version."""

    name: str
    value: str = field(repr=False)
    tags: Mapping[str, str] = field(default_factory=dict)
    version: str | None = None


class SecretSource(Protocol):
    """Reads the latest version of a secret.

    Implementations raise :class:`SecretNotFoundError` for a missing secret and
    :class:`KeyVaultReadError` for any other failure; they never put a value in an error.
    """

    def read_secret(self, name: str) -> SecretRecord: ...


class KeyVaultSecretSource:
    """:class:`SecretSource` over the real ``azure.keyvault.secrets.SecretClient``.

    Needs the *Key Vault Secrets User* role (``secrets/get``) on the vault.
    """

    def __init__(self, client: SecretClient) -> None:
        self._client = client

    def read_secret(self, name: str) -> SecretRecord:
        try:
            secret = self._client.get_secret(name)
        except ResourceNotFoundError as exc:
            raise SecretNotFoundError(name, "secret not found", status_code=exc.status_code,
                                      error_code=exc.error.code if exc.error else None) from exc
        except HttpResponseError as exc:
            raise KeyVaultReadError(name, type(exc).__name__, status_code=exc.status_code,
                                    error_code=exc.error.code if exc.error else None) from exc
        except AzureError as exc:
            # Transport-level failures (DNS, TLS, timeouts): no status code to report.
            raise KeyVaultReadError(name, type(exc).__name__) from exc
        if secret.value is None:
            raise KeyVaultReadError(name, "secret has no value")
        return SecretRecord(name=name, value=secret.value, tags=dict(secret.properties.tags or {}),
                            version=secret.properties.version)
