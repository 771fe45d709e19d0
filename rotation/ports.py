"""Ports: what the engine needs from the outside world. Adapters in ``shared/`` implement them against
Azure; tests implement them with fakes. Every method raises only ``rotation.errors`` classes."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from rotation.model import HistoryRecord, ProbeOverride, SecretValue, Slot, TargetState, VersionedState


@dataclass(frozen=True)
class StoredSecret:
    """The latest version of a Key Vault secret."""

    name: str
    value: SecretValue
    version: str
    tags: Mapping[str, str]
    expires_on: datetime | None = None
    created_on: datetime | None = None  # when this version was written (the key-age report reads it)


@dataclass(frozen=True)
class SecretVersion:
    """One version of a secret as Key Vault lists it: no value, only when it was made and its tags."""

    version: str
    created_on: datetime | None
    tags: Mapping[str, str]


@dataclass(frozen=True)
class AccountInfo:
    resource_id: str
    kind: str
    endpoint: str | None
    disable_local_auth: bool
    location: str | None = None
    custom_subdomain: bool = True  # ``customSubDomainName`` is set: the endpoint is the account's own host

    def kept_in_state(self) -> dict[str, str | bool | None]:
        """What the state keeps of the account so verification needs no ARM read (``TargetState`` fields)."""
        return {
            "endpoint": self.endpoint,
            "kind": self.kind,
            "location": self.location,
            "custom_subdomain": self.custom_subdomain,
        }


@dataclass(frozen=True)
class DataPlane:
    """What the probe needs to know about an account to choose its request (kept in the state at adoption)."""

    endpoint: str
    kind: str
    location: str | None = None
    custom_subdomain: bool = True


@dataclass(frozen=True)
class AccountKeys:
    key1: SecretValue
    key2: SecretValue

    def of(self, slot: Slot) -> SecretValue:
        return self.key1 if slot is Slot.KEY1 else self.key2


class ProbeResult(StrEnum):
    ACCEPTED = "accepted"  # 2xx to a request the service authenticates: the key works
    REFUSED = "refused"  # 401 / 403 invalid key: the key is not (yet) accepted
    INCONCLUSIVE = "inconclusive"  # 404, 3xx, 429, 5xx, timeout, connection error: proves nothing, try later
    NETWORK_DENIED = "network-denied"  # 403 from the account's firewall: this service cannot reach it
    LOCAL_AUTH_DISABLED = "local-auth-disabled"  # 403 AuthenticationTypeDisabled: keys are off (keyless)


class SecretStore(ABC):
    """Key Vault secrets (data plane)."""

    @abstractmethod
    def get_secret(self, name: str) -> StoredSecret | None:
        """Latest version, or None when the secret does not exist."""

    @abstractmethod
    def set_secret(
        self, name: str, value: SecretValue, tags: Mapping[str, str], expires_on: datetime | None = None
    ) -> str:
        """Store a new version; returns its version id."""

    @abstractmethod
    def recover_secret(self, name: str) -> None:
        """Start recovering a deleted (soft-deleted) secret; Key Vault finishes it within seconds."""

    @abstractmethod
    def list_versions(self, name: str) -> list[SecretVersion]:
        """Every version of a secret (no values), oldest first; empty when the secret does not exist."""


class KeyService(ABC):
    """ARM Microsoft.CognitiveServices/accounts (control plane)."""

    @abstractmethod
    def get_account(self, resource_id: str) -> AccountInfo: ...

    @abstractmethod
    def list_keys(self, resource_id: str) -> AccountKeys:
        """Raises ``KeylessAccount`` when local auth is disabled."""

    @abstractmethod
    def regenerate_key(self, resource_id: str, slot: Slot) -> None:
        """Regenerate one key. Take the new value from ``list_keys``: azure-core may retry the POST."""


class KeyProbe(ABC):
    """A cheap data-plane request that the service authenticates with the key."""

    @abstractmethod
    def probe(
        self, plane: DataPlane, key: SecretValue, override: ProbeOverride | None = None
    ) -> ProbeResult:
        """``override`` (the target's ``probe`` setting) replaces the request the kind would get."""


class StateStore(ABC):
    """One entity per target, written only by compare-and-swap on its ETag."""

    @abstractmethod
    def get(self, target_key: str) -> VersionedState | None: ...

    @abstractmethod
    def create(self, target_key: str, state: TargetState) -> VersionedState:
        """Insert; raises ``StateConflict`` when the entity already exists."""

    @abstractmethod
    def replace(self, target_key: str, state: TargetState, etag: str) -> VersionedState:
        """Replace if the ETag still matches; raises ``StateConflict`` otherwise."""

    @abstractmethod
    def list_all(self) -> Iterator[tuple[str, VersionedState]]:
        """Every (target key, state) in the table (paged; one query per 1,000 entities)."""


class HistoryStore(ABC):
    """Append-only history of transitions."""

    @abstractmethod
    def append(self, target_key: str, record: HistoryRecord) -> None: ...

    @abstractmethod
    def list(self, target_key: str, limit: int = 20) -> list[HistoryRecord]:
        """Newest first."""


@dataclass(frozen=True)
class LifecycleEvent:
    event_type: str  # KeyRotation.CycleStarted | KeySwapped | CycleCompleted | CycleFailed
    target: str
    account_name: str
    cycle_id: str | None
    slot: str | None
    active_slot: str | None
    reason: str | None = None


class LifecycleSink(ABC):
    @abstractmethod
    def publish(self, events: Iterable[LifecycleEvent]) -> None:
        """Best effort: never raises (a lost notification must not fail a rotation)."""


class NullLifecycleSink(LifecycleSink):
    """Used when no topic is configured."""

    def publish(self, events: Iterable[LifecycleEvent]) -> None:
        return None


class WriteRateLimiter(ABC):
    """Per-subscription budget for ARM writes. ARM counts every POST against the write bucket —
    ``regenerateKey`` and ``listKeys`` alike. Never blocks (I6): callers defer instead."""

    @abstractmethod
    def try_acquire(self, subscription_id: str, writes: int = 1) -> bool:
        """Take ``writes`` tokens at once, or none (False: defer the work to a later invocation)."""

    @abstractmethod
    def penalize(self, subscription_id: str, retry_after_seconds: float) -> None:
        """ARM answered 429: no writes for this subscription before Retry-After has passed."""


class UnlimitedWrites(WriteRateLimiter):
    def try_acquire(self, subscription_id: str, writes: int = 1) -> bool:
        return True

    def penalize(self, subscription_id: str, retry_after_seconds: float) -> None:
        return None


Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Ports:
    """Everything the engine talks to, built once per process by the composition root."""

    secrets: SecretStore
    keys: KeyService
    probe: KeyProbe
    states: StateStore
    history: HistoryStore
    lifecycle: LifecycleSink
    limiter: WriteRateLimiter
