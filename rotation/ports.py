"""Ports: what the engine needs from the outside world. Adapters in ``shared/`` implement them against
Azure; tests implement them with fakes. Every method raises only ``rotation.errors`` classes."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from rotation.consumers import Consumer
from rotation.errors import AzureAccessDenied
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

    def get_secrets(self, names: Sequence[str]) -> list[StoredSecret | None]:
        """``get_secret`` of each name, in order; an adapter that can sends them together (one round trip
        of wall time, one wake-up of its I/O loop for answers that arrive together). An error is raised
        as ``get_secret`` raises it, the first in ``names``' order."""
        return [self.get_secret(name) for name in names]

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
    def regenerate_key(self, resource_id: str, slot: Slot) -> AccountKeys | None:
        """Regenerate one key; both keys as the service answered, or None when that answer may be stale
        (the POST was sent more than once: azure-core retried it) — then take them from ``list_keys``."""


@dataclass(frozen=True)
class DiscoveredAccount:
    """An AI services account as an ARM list returns it: its id and its tags (names as Azure stores them)."""

    resource_id: str
    tags: Mapping[str, str]


class AccountDirectory(ABC):
    """ARM listing of ``Microsoft.CognitiveServices/accounts`` across the subscriptions in scope."""

    @abstractmethod
    def list_accounts(self) -> list[DiscoveredAccount]:
        """Every account of every subscription in scope (paged). Raises ``TransientAzureError`` /
        ``AzureAccessDenied`` when a subscription cannot be listed: a partial list would make accounts
        look deleted, so the caller keeps the previous one instead."""


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

    def append_all(self, target_key: str, records: Sequence[HistoryRecord]) -> None:
        """Several rows for one target at once (the Table adapter sends them as one entity, one request):
        a cycle's rows when it ends. Default: one ``append`` each."""
        for record in records:
            self.append(target_key, record)

    @abstractmethod
    def stored_since(self, target_key: str, since: datetime) -> list[HistoryRecord]:
        """At least every stored row at or after ``since`` (an adapter may return older rows stored with
        them), in no particular order: what the engine checks, after a crash, before writing rows that the
        crashed invocation may have written already."""

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
    """A write budget per scope: ARM writes per subscription (ARM counts every POST against the write
    bucket — ``regenerateKey`` and ``listKeys`` alike), Key Vault secret writes per vault URL. Never
    blocks (I6): callers defer instead."""

    @abstractmethod
    def try_acquire(self, subscription_id: str, writes: int = 1) -> bool:
        """Take ``writes`` tokens at once, or none (False: defer the work to a later invocation)."""

    def wait_seconds(self, subscription_id: str, writes: int = 1) -> float:
        """About how long until ``writes`` tokens are there (0 when unknown): when to schedule deferred
        work so that it does not wait for the next timer tick."""
        return 0.0

    @abstractmethod
    def penalize(self, subscription_id: str, retry_after_seconds: float) -> None:
        """ARM answered 429: no writes for this subscription before Retry-After has passed."""

    @abstractmethod
    def release(self, subscription_id: str, writes: int) -> None:
        """Give back ``writes`` tokens taken but not spent (the work did not happen); never more than the
        burst is held. Best effort: never raises."""


class UnlimitedWrites(WriteRateLimiter):
    def try_acquire(self, subscription_id: str, writes: int = 1) -> bool:
        return True

    def release(self, subscription_id: str, writes: int) -> None:
        return None

    def penalize(self, subscription_id: str, retry_after_seconds: float) -> None:
        return None


class WorkScheduler(ABC):
    """Runs ``advance`` for a target again later (a queue message with a visibility delay): deferred
    work is stored state, never slept on (I6), and does not wait for the next timer tick."""

    @abstractmethod
    def schedule(self, resource_id: str, delay_seconds: float) -> None:
        """Best effort: never raises (the next sweep picks the target up anyway)."""

    def schedule_many(self, resource_ids: Sequence[str], delay_seconds: float) -> None:
        """Several targets due at the same time, brought back together where the adapter can (the queue:
        one message, one invocation running them side by side). Best effort, as ``schedule``; by default
        one ``schedule`` each."""
        for resource_id in resource_ids:
            self.schedule(resource_id, delay_seconds)


class NoScheduler(WorkScheduler):
    def schedule(self, resource_id: str, delay_seconds: float) -> None:
        return None


Clock = Callable[[], datetime]


@dataclass(frozen=True)
class ObservedReference:
    """One Key Vault reference of a consumer as its platform reports it (never the value): the vault host
    and secret it names, whether it resolved, and the secret version it resolved to when the platform says
    (App Service ``activeVersion``; API Management reports no version, only when it last fetched)."""

    vault: str  # host (``kv-rot.vault.azure.net``) or vault name, lower-case
    secret_name: str
    resolved: bool
    version: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class ConsumerObservation:
    references: tuple[ObservedReference, ...]
    fetched_at: datetime | None = None  # API Management ``keyVault.lastStatus.timeStampUtc``


class ConsumerRefresher(ABC):
    """The platforms hosting a target's consumers: force a refetch of their Key Vault references, and read
    what they resolved (docs/ENGINE.md "Consumers"). Only consumers with ``has_signal`` are passed."""

    @abstractmethod
    def refresh(self, consumer: Consumer) -> None:
        """Ask the platform to refetch now (App Service references refresh, API Management refreshSecret)."""

    @abstractmethod
    def observe(self, consumer: Consumer) -> ConsumerObservation:
        """What the consumer's references resolved, as the platform reports it."""


class NoConsumerPlatforms(ConsumerRefresher):
    """For a deployment without consumer access: every call says so (the drain then waits out bounds)."""

    def refresh(self, consumer: Consumer) -> None:
        raise AzureAccessDenied(f"{consumer.label}: no consumer platform adapter is configured")

    def observe(self, consumer: Consumer) -> ConsumerObservation:
        raise AzureAccessDenied(f"{consumer.label}: no consumer platform adapter is configured")


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
    limiter: WriteRateLimiter  # ARM writes, per subscription (and identity)
    vault_limiter: WriteRateLimiter = field(default_factory=UnlimitedWrites)  # secret writes, per vault
    # Other vaults than ``secrets``' (a target's ``vault_url``); None: only the default vault exists.
    vaults: Callable[[str], SecretStore] | None = None
    directory: AccountDirectory | None = None  # discovery by tag; None: only ROTATION_TARGETS
    scheduler: WorkScheduler = field(default_factory=NoScheduler)
    default_vault_url: str = ""
    consumers: ConsumerRefresher = field(default_factory=NoConsumerPlatforms)  # App Service, API Management

    def secrets_for(self, vault_url: str) -> SecretStore:
        if not vault_url or self.vaults is None or _same_url(vault_url, self.default_vault_url):
            return self.secrets
        return self.vaults(vault_url)

    def vault_key(self, vault_url: str) -> str:
        """The budget scope of a vault: its URL, the default vault's when none is named."""
        return (vault_url or self.default_vault_url or "default").rstrip("/").lower()


def _same_url(a: str, b: str) -> bool:
    return a.rstrip("/").lower() == b.rstrip("/").lower()
