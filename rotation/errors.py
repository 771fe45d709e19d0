"""One exception hierarchy for the rotation domain.

Adapters translate azure-core errors into these classes (see ``shared/azure/errors.py``); triggers map them
to responses. Messages name targets, slots and steps — never a key value (invariant I5).
"""

from __future__ import annotations


class RotationError(Exception):
    """Base class of every error the engine raises on purpose."""


class SettingsError(RotationError):
    """An app setting is missing or invalid; the message names the setting (and the target entry)."""


class UnknownTarget(RotationError):
    """The named target is not in ROTATION_TARGETS."""


class LeaseLost(RotationError):
    """Another invocation changed the target's state since we read it (ETag mismatch) or took our lease."""


class TransientAzureError(RotationError):
    """A call to Azure failed in a way worth retrying later (throttling, 5xx, timeout, connection)."""

    def __init__(self, message: str, retry_after_seconds: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class AzureAccessDenied(RotationError):
    """Azure refused the call (401/403): a role assignment is missing."""


class KeyVerificationFailed(RotationError):
    """The data plane did not accept a key the service had just issued (the cycle is abandoned)."""


class DataPlaneUnreachable(KeyVerificationFailed):
    """The account's network rules deny this service: the key could not be checked at all. Not a refused
    key, so the message tells the operator what to change instead."""


class AzureRequestRejected(RotationError):
    """Azure rejected the request as invalid (400/404/409) — retrying the same call will not help."""


class KeylessAccount(RotationError):
    """The account has local (key) authentication disabled (``disableLocalAuth``)."""


class UnexpectedError(RotationError):
    """An exception the engine did not anticipate (a bug, or e.g. ``OSError`` from a CA file that no longer
    exists), caught at a step's boundary so the target records it and its lease is released at once."""

    @classmethod
    def wrapping(cls, exc: BaseException) -> UnexpectedError:
        # Only the class and a bounded reason: nothing the engine passes around holds a revealed key, and
        # the bound keeps a pathological message out of state and logs.
        reason = str(exc).replace("\n", " ")
        return cls(f"{type(exc).__name__}: {reason[:300]}")


class SecretDeleted(AzureRequestRejected):
    """Key Vault refused a write because the secret is deleted but recoverable (soft delete): its name
    cannot be reused until it is recovered or purged."""


class StateConflict(LeaseLost):
    """Compare-and-swap on the state entity failed: someone else wrote it first."""


class UnsafeToProceed(RotationError):
    """A guard of invariant I2 failed (e.g. the pointer names the slot we were about to regenerate).

    The engine never regenerates in that case: the cycle is abandoned (the pointer is left as it is) and a
    drift check reconciles the state with Key Vault before any later cycle.
    """
