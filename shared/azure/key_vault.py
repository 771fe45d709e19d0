"""Key Vault secrets adapter (azure-keyvault-secrets). Needs the "Key Vault Secrets Officer" role on the
vault (get, set, list)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.keyvault.secrets import SecretClient

from rotation.errors import SecretDeleted
from rotation.model import SecretValue
from rotation.ports import SecretStore, SecretVersion, StoredSecret
from shared.azure.errors import translate
from shared.loop_greenlets import off_loop

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class KeyVaultSecretStore(SecretStore):
    """``client`` is a ``SecretClient`` or, on the asynchronous path, the ``.aio`` one behind a
    ``shared.aio_loop.BlockingClient`` (same methods). ``recovery`` is the synchronous client that
    ``recover_secret`` uses when ``client`` is not one: the ``.aio`` client's ``recover_deleted_secret``
    waits for the recovery to finish, polling with sleeps, which nothing here may do (I6)."""

    def __init__(self, client: SecretClient, origin: str = "", recovery: SecretClient | None = None) -> None:
        self.client = client
        self.recovery = recovery or client
        # Where the vault's URL came from, so an error tells the operator what to fix (a tag, a setting).
        self.where = f"{client.vault_url} ({origin})" if origin else client.vault_url

    def get_secret(self, name: str) -> StoredSecret | None:
        """GET /secrets/{name}/ (latest). Permission: secrets/get."""
        try:
            secret = self.client.get_secret(name)
        except (AzureError, OSError) as error:
            return self._read(name, error)
        return self._read(name, secret)

    def get_secrets(self, names: Sequence[str]) -> list[StoredSecret | None]:
        """The reads sent together on the asynchronous path (``BlockingClient.together``); one after the
        other on the synchronous client."""
        together = getattr(self.client, "together", None)
        if together is None:
            return super().get_secrets(names)
        answers = together("get_secret", [(name,) for name in names])
        return [self._read(name, answer) for name, answer in zip(names, answers, strict=True)]

    def _read(self, name: str, secret: Any) -> StoredSecret | None:
        """What ``get_secret`` answers for the SDK's answer (a secret, or the error it raised)."""
        if isinstance(secret, ResourceNotFoundError):
            return None
        if isinstance(secret, AzureError | OSError):
            raise translate(secret, "keyvault.get_secret", self.where) from None
        if isinstance(secret, BaseException):
            raise secret
        return StoredSecret(
            name=name,
            value=SecretValue(secret.value or ""),
            version=secret.properties.version or "",
            tags=dict(secret.properties.tags or {}),
            expires_on=secret.properties.expires_on,
            created_on=secret.properties.created_on,
        )

    def set_secret(
        self, name: str, value: SecretValue, tags: Mapping[str, str], expires_on: datetime | None = None
    ) -> str:
        """PUT /secrets/{name}. Permission: secrets/set."""
        try:
            secret = self.client.set_secret(
                name, value.reveal(), tags=dict(tags), expires_on=expires_on, content_type="text/plain"
            )
        except ResourceExistsError:
            # 409 Conflict on a PUT: the name is held by a deleted but recoverable secret (soft delete).
            raise SecretDeleted(f"keyvault.set_secret: HTTP 409 {name} is deleted but recoverable") from None
        except (AzureError, OSError) as error:
            # ``from None``: the SDK error's context must not drag the request into a traceback.
            raise translate(error, "keyvault.set_secret", self.where) from None
        return secret.properties.version or ""

    def recover_secret(self, name: str) -> None:
        """POST /deletedsecrets/{name}/recover. Permission: secrets/recover. Does not wait for the
        recovery to finish (nothing here sleeps, I6): the next invocation finds the secret back."""
        try:
            # a poller we never wait on; the synchronous client's request off the I/O loop's thread
            off_loop(self.recovery.begin_recover_deleted_secret, name)
        except ResourceNotFoundError:
            return  # purged, or already recovered
        except (AzureError, OSError) as error:
            raise translate(error, "keyvault.recover_deleted_secret", self.where) from None

    def list_versions(self, name: str) -> list[SecretVersion]:
        """GET /secrets/{name}/versions (paged). Permission: secrets/list. Values are never listed."""
        try:
            listed = [
                SecretVersion(
                    version=props.version or "", created_on=props.created_on, tags=dict(props.tags or {})
                )
                for props in self.client.list_properties_of_secret_versions(name)
            ]
        except ResourceNotFoundError:
            return []
        except (AzureError, OSError) as error:
            raise translate(error, "keyvault.list_secret_versions", self.where) from None
        # Key Vault lists versions in no documented order.
        return sorted(listed, key=lambda v: (v.created_on is None, v.created_on or _EPOCH, v.version))
