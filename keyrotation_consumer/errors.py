"""Errors raised by the consumer library. None of them ever carries a key value."""

from __future__ import annotations


class KeyRotationConsumerError(Exception):
    """Base class of every error this library raises."""


class KeyVaultReadError(KeyRotationConsumerError):
    """A Key Vault read failed (network, throttling, permission, missing secret).

    Carries the secret name, the HTTP status and the service's error code so that operators can act,
    but never the response body or a secret value.
    """

    def __init__(self, secret_name: str, reason: str, *, status_code: int | None = None,
                 error_code: str | None = None) -> None:
        self.secret_name = secret_name
        self.reason = reason
        self.status_code = status_code
        self.error_code = error_code
        details = [f"status={status_code}" if status_code is not None else None,
                   f"code={error_code}" if error_code else None]
        suffix = " ".join(d for d in details if d)
        super().__init__(f"reading secret {secret_name!r} from Key Vault failed: {reason}"
                         + (f" ({suffix})" if suffix else ""))


class SecretNotFoundError(KeyVaultReadError):
    """The secret does not exist (HTTP 404): the vault is not seeded or the prefix is wrong."""


class KeyLayoutError(KeyRotationConsumerError):
    """The vault holds something that does not follow the documented layout (e.g. a bad pointer)."""


class KeyUnavailableError(KeyRotationConsumerError):
    """No usable key: nothing was ever read, or the cached one is older than ``max_stale``.

    The underlying :class:`KeyVaultReadError` is chained as ``__cause__``.
    """


class MissingDependencyError(KeyRotationConsumerError, ImportError):
    """An optional integration was asked for without its extra installed; the message names the command."""
