"""In-memory fakes implementing the engine's ports, with invariant bookkeeping (I2, I4) in a shared ``World``.

Counting calls and crash injection are ``testkit.watch``'s (the unit rig wraps these fakes with it).
tests/contract runs the same cases against each fake and its real adapter; tests/engine runs the engine
against the emulator and Azurite.
"""

from __future__ import annotations

import itertools
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from rotation.consumers import Consumer, ConsumerKind
from rotation.errors import AzureRequestRejected, KeylessAccount, SecretDeleted, StateConflict
from rotation.model import (
    HistoryRecord,
    ProbeOverride,
    SecretValue,
    Slot,
    Target,
    TargetState,
    VersionedState,
)
from rotation.ports import (
    AccountDirectory,
    AccountInfo,
    AccountKeys,
    ConsumerObservation,
    ConsumerRefresher,
    DataPlane,
    DiscoveredAccount,
    HistoryStore,
    KeyProbe,
    KeyService,
    LifecycleEvent,
    LifecycleSink,
    ObservedReference,
    ProbeResult,
    SecretStore,
    SecretVersion,
    StateStore,
    StoredSecret,
)

T0 = datetime(2030, 1, 1, tzinfo=UTC)
SUB = "00000000-0000-0000-0000-000000000001"


def rid(name: str, sub: str = SUB) -> str:
    return f"/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/{name}"


@dataclass
class FakeAccount:
    resource_id: str
    keys: dict[Slot, str] = field(default_factory=lambda: {s: secrets.token_hex(16) for s in Slot})
    kind: str = "AIServices"
    disable_local_auth: bool = False
    pending: dict[str, int] = field(default_factory=dict)  # key value -> probes left before accepted
    issued: list[str] = field(default_factory=list)


class World:
    """Shared truth for the fakes: accounts, vault, clock, invariant violations."""

    def __init__(
        self, clock: Callable[[], datetime], drain_of: Mapping[str, timedelta] | None = None
    ) -> None:
        self.clock = clock
        self.accounts: dict[str, FakeAccount] = {}
        # Key Vault names are case-insensitive: both dicts are keyed by the lower-cased name.
        self.vault: dict[str, list[StoredSecret]] = {}
        self.created: dict[str, datetime] = {}
        # soft-deleted secrets: hidden from reads and listings, their names refuse writes until recovered
        self.deleted: set[str] = set()
        # prefix -> (when, value) each time P-active changed value: what a P-active reader got (I2)
        self.active_history: dict[str, list[tuple[datetime, str]]] = {}
        self.pointer_history: dict[str, list[tuple[datetime, Slot]]] = {}  # prefix -> changes
        self.violations: list[str] = []
        self.regenerations: list[tuple[str, Slot]] = []
        self.lock = threading.RLock()
        self.propagation_probes = 0  # a new key is refused this many times before being accepted
        # the next this-many regenerateKey calls were sent twice by azure-core: their answer is not trusted
        self.retried_regenerates = 0
        self.faults: dict[str, list[Exception]] = {}
        self.states: FakeStateStore | None = None
        self.targets: dict[str, Target] = {}

    def add_account(self, name: str, **kwargs: object) -> FakeAccount:
        account = FakeAccount(rid(name), **kwargs)  # type: ignore[arg-type]
        account.issued.extend(account.keys.values())
        self.accounts[account.resource_id.lower()] = account
        return account

    def account(self, resource_id: str) -> FakeAccount:
        return self.accounts[resource_id.lower()]

    def all_key_values(self) -> list[str]:
        return [value for account in self.accounts.values() for value in account.issued]

    def delete_secret(self, name: str) -> None:
        """What an operator's delete does (soft delete): the name refuses writes until recovered."""
        with self.lock:
            self.deleted.add(name.lower())

    def fault(self, operation: str) -> None:
        queue = self.faults.get(operation)
        if queue:
            raise queue.pop(0)

    def secret_value(self, name: str) -> str | None:
        versions = self.vault.get(name.lower())
        return versions[-1].value.reveal() if versions else None


class FakeSecrets(SecretStore):
    def __init__(self, world: World) -> None:
        self.world = world
        self.versions = itertools.count(1)

    def get_secret(self, name: str) -> StoredSecret | None:
        with self.world.lock:
            self.world.fault("keyvault.get_secret")
            versions = self.world.vault.get(name.lower())
            return versions[-1] if versions and name.lower() not in self.world.deleted else None

    def set_secret(
        self, name: str, value: SecretValue, tags: Mapping[str, str], expires_on: datetime | None = None
    ) -> str:
        with self.world.lock:
            self.world.fault("keyvault.set_secret")
            if name.lower() in self.world.deleted:
                raise SecretDeleted(f"keyvault.set_secret: HTTP 409 {name} is deleted but recoverable")
            version = f"v{next(self.versions)}"
            # Key Vault keeps ``exp`` and ``created`` in whole Unix seconds.
            expires_on = expires_on.replace(microsecond=0) if expires_on else None
            created = self.world.clock().replace(microsecond=0)
            self.world.vault.setdefault(name.lower(), []).append(
                StoredSecret(name, value, version, dict(tags), expires_on, created)
            )
            self.world.created[version] = created
            if name.endswith("-active"):
                held = self.world.active_history.setdefault(name[: -len("-active")], [])
                if not held or held[-1][1] != value.reveal():
                    held.append((self.world.clock(), value.reveal()))
            if name.endswith("-active-key"):
                prefix = name[: -len("-active-key")]
                slot = Slot.parse(value.reveal())
                assert slot is not None
                history = self.world.pointer_history.setdefault(prefix, [])
                if not history or history[-1][1] is not slot:
                    history.append((self.world.clock(), slot))
        return version

    def recover_secret(self, name: str) -> None:
        with self.world.lock:
            self.world.deleted.discard(name.lower())

    def list_versions(self, name: str) -> list[SecretVersion]:
        with self.world.lock:
            self.world.fault("keyvault.list_secret_versions")
            return [
                SecretVersion(v.version, self.world.created.get(v.version), dict(v.tags))
                for v in self.world.vault.get(name.lower(), [])
                if name.lower() not in self.world.deleted
            ]


class FakeKeys(KeyService):
    def __init__(self, world: World) -> None:
        self.world = world

    def _account(self, resource_id: str, operation: str) -> FakeAccount:
        account = self.world.accounts.get(resource_id.lower())
        if account is None:  # what the adapter makes of ARM's 404 ResourceNotFound
            raise AzureRequestRejected(f"{operation}: HTTP 404 ResourceNotFound")
        return account

    def get_account(self, resource_id: str) -> AccountInfo:
        with self.world.lock:
            self.world.fault("arm.get_account")
            account = self._account(resource_id, "arm.get_account")
            name = resource_id.rsplit("/", 1)[-1]
            return AccountInfo(
                resource_id, account.kind, f"https://{name}.example/", account.disable_local_auth, "eastus"
            )

    def list_keys(self, resource_id: str) -> AccountKeys:
        with self.world.lock:
            self.world.fault("arm.list_keys")
            account = self._account(resource_id, "arm.list_keys")
            if account.disable_local_auth:
                raise KeylessAccount("local auth disabled")
            return AccountKeys(SecretValue(account.keys[Slot.KEY1]), SecretValue(account.keys[Slot.KEY2]))

    def regenerate_key(self, resource_id: str, slot: Slot) -> AccountKeys | None:
        with self.world.lock:
            self.world.fault("arm.regenerate_key")
            account = self._account(resource_id, "arm.regenerate_key")
            if account.disable_local_auth:
                raise KeylessAccount("local auth disabled")
            self._check_i2_i4(resource_id, slot)
            value = secrets.token_hex(16)
            account.keys[slot] = value
            account.issued.append(value)
            account.pending[value] = self.world.propagation_probes
            self.world.regenerations.append((resource_id, slot))
            if self.world.retried_regenerates > 0:
                self.world.retried_regenerates -= 1
                return None
            return AccountKeys(SecretValue(account.keys[Slot.KEY1]), SecretValue(account.keys[Slot.KEY2]))

    def _check_i2_i4(self, resource_id: str, slot: Slot) -> None:
        target = self.world.targets.get(resource_id.lower())
        if target is None:
            return
        now = self.world.clock()
        history = self.world.pointer_history.get(target.secret_prefix, [])
        if history and history[-1][1] is slot:
            self.world.violations.append(f"I2: regenerate {slot} while the pointer names it")
        drain = self._drain_in_effect(target)
        for index, (_at, named) in enumerate(history):
            if named is slot and index + 1 < len(history):
                until = history[index + 1][0]
                if now < until + drain:
                    self.world.violations.append(f"I2: regenerate {slot} named until {until}, now {now}")
        # P-active readers hold whatever value it had: the value being regenerated must not be one it
        # held now or less than a drain time ago.
        doomed = self.world.account(resource_id).keys[slot]
        held = self.world.active_history.get(target.secret_prefix, [])
        for index, (_at, value) in enumerate(held):
            if value != doomed:
                continue
            replaced_at = held[index + 1][0] if index + 1 < len(held) else None
            if replaced_at is None or now < replaced_at + drain:
                self.world.violations.append(f"I2: regenerate {slot} while P-active holds or held it")
        states = self.world.states
        if states is not None:
            current = states.rows.get(target.state_key)
            if (
                current is None
                or current[0].lease_owner is None
                or (current[0].lease_expires_at is not None and current[0].lease_expires_at <= now)
            ):
                self.world.violations.append("I4: regenerate without a live lease")

    def _drain_in_effect(self, target: Target) -> timedelta:
        states = self.world.states
        current = states.rows.get(target.state_key) if states else None
        if current and current[0].drain_seconds is not None:
            return timedelta(seconds=current[0].drain_seconds)
        return target.drain_time


class FakeProbe(KeyProbe):
    def __init__(self, world: World) -> None:
        self.world = world

    def probe(self, plane: DataPlane, key: SecretValue, override: ProbeOverride | None = None) -> ProbeResult:
        with self.world.lock:
            self.world.fault("dataplane.request")
            name = plane.endpoint.split("//", 1)[1].split(".", 1)[0]
            account = self.world.account(rid(name))
            value = key.reveal()
            if value not in account.keys.values():
                return ProbeResult.REFUSED
            left = account.pending.get(value, 0)
            if left > 0:
                account.pending[value] = left - 1
                return ProbeResult.REFUSED
            return ProbeResult.ACCEPTED


class FakeStateStore(StateStore):
    def __init__(self, world: World) -> None:
        self.world = world
        self.rows: dict[str, tuple[TargetState, str]] = {}
        self.etags = itertools.count(1)
        world.states = self

    def get(self, target_key: str) -> VersionedState | None:
        with self.world.lock:
            self.world.fault("table.get")
            row = self.rows.get(target_key)
            return VersionedState(*row) if row else None

    def create(self, target_key: str, state: TargetState) -> VersionedState:
        with self.world.lock:
            self.world.fault("table.write")
            if target_key in self.rows:
                raise StateConflict("exists")
            etag = f"e{next(self.etags)}"
            self.rows[target_key] = (state, etag)
        return VersionedState(state, etag)

    def replace(self, target_key: str, state: TargetState, etag: str) -> VersionedState:
        with self.world.lock:
            self.world.fault("table.write")
            row = self.rows.get(target_key)
            if row is None or row[1] != etag:
                raise StateConflict("etag mismatch")
            new_etag = f"e{next(self.etags)}"
            self.rows[target_key] = (state, new_etag)
        return VersionedState(state, new_etag)

    def list_all(self) -> Iterator[tuple[str, VersionedState]]:
        with self.world.lock:
            rows = list(self.rows.items())
        for key, (state, etag) in rows:
            yield key, VersionedState(state, etag)


class FakeHistory(HistoryStore):
    def __init__(self) -> None:
        self.rows: dict[str, list[HistoryRecord]] = {}

    def append(self, target_key: str, record: HistoryRecord) -> None:
        self.rows.setdefault(target_key, []).append(record)

    def stored_since(self, target_key: str, since: datetime) -> list[HistoryRecord]:
        return [record for record in self.rows.get(target_key, []) if record.at >= since]

    def list(self, target_key: str, limit: int = 20) -> list[HistoryRecord]:
        """Newest ``at`` first, as the table's row keys sort (equal times: the later append first)."""
        newest_appended_first = list(reversed(self.rows.get(target_key, [])))
        return sorted(newest_appended_first, key=lambda r: r.at, reverse=True)[:limit]


class FakeLifecycle(LifecycleSink):
    def __init__(self) -> None:
        self.events: list[LifecycleEvent] = []

    def publish(self, events: Iterable[LifecycleEvent]) -> None:
        self.events.extend(events)


class FakeConsumerPlatforms(ConsumerRefresher):
    """App Service sites and API Management named values reading one secret of the fake vault, as the
    emulator's (emulator/consumers.py): each holds the version that was current when it last fetched; a
    stuck one never moves. Passes tests/contract/test_consumer_platforms.py like the ARM adapters."""

    def __init__(self, world: World, vault_host: str = "default") -> None:
        self.world = world
        self.vault_host = vault_host
        self.held: dict[str, tuple[str, str | None, datetime]] = {}  # id -> (secret, version, fetched at)
        self.stuck: set[str] = set()
        self.refreshes: list[str] = []

    def add(self, resource_id: str, secret_name: str) -> None:
        self.held[resource_id.lower()] = self._fetch(secret_name)

    def _fetch(self, secret_name: str) -> tuple[str, str | None, datetime]:
        versions = self.world.vault.get(secret_name.lower())
        return secret_name, versions[-1].version if versions else None, self.world.clock()

    def _entry(self, consumer: Consumer, operation: str) -> tuple[str, str | None, datetime]:
        self.world.fault(operation)
        entry = self.held.get(consumer.resource_id.lower())
        if entry is None:
            raise AzureRequestRejected(f"{operation}: HTTP 404 ResourceNotFound — no such consumer")
        return entry

    def refresh(self, consumer: Consumer) -> None:
        secret_name, _, _ = self._entry(consumer, "consumers.refresh")
        self.refreshes.append(consumer.resource_id)
        if consumer.resource_id.lower() not in self.stuck:
            self.held[consumer.resource_id.lower()] = self._fetch(secret_name)

    def observe(self, consumer: Consumer) -> ConsumerObservation:
        secret_name, version, fetched_at = self._entry(consumer, "consumers.observe")
        if consumer.kind is ConsumerKind.API_MANAGEMENT:
            return ConsumerObservation(
                (ObservedReference(self.vault_host, secret_name, version is not None),), fetched_at
            )
        return ConsumerObservation(
            (ObservedReference(self.vault_host, secret_name, version is not None, version),)
        )


class FakeAccountDirectory(AccountDirectory):
    """ARM's account lists in memory: accounts by subscription with their tags, the subscriptions the
    identity can see (those holding an account, plus any added), and listing failures queued per call.
    Same contract as ``shared.azure.resource_manager.ArmAccountDirectory`` (tests/contract)."""

    def __init__(self, scopes: Iterable[str] = ()) -> None:
        self.scopes = tuple(scopes)
        self.accounts: dict[str, DiscoveredAccount] = {}  # key: lower-cased resource id
        self.extra_subscriptions: set[str] = set()
        self.failures: list[Exception] = []  # raised by the next listings, one per call, instead of a list
        self.lock = threading.Lock()

    def add(self, resource_id: str, tags: Mapping[str, str] | None = None) -> None:
        with self.lock:
            self.accounts[resource_id.lower()] = DiscoveredAccount(resource_id, dict(tags or {}))

    def set_tags(self, resource_id: str, tags: Mapping[str, str]) -> None:
        """Replace every tag, as ARM's tag PUT does."""
        with self.lock:
            self.accounts[resource_id.lower()] = DiscoveredAccount(
                self.accounts[resource_id.lower()].resource_id, dict(tags)
            )

    def delete(self, resource_id: str) -> None:
        with self.lock:
            del self.accounts[resource_id.lower()]

    def fail_next(self, error: Exception) -> None:
        self.failures.append(error)

    def list_accounts(self) -> list[DiscoveredAccount]:
        with self.lock:
            if self.failures:
                raise self.failures.pop(0)  # the whole listing fails: never a partial list
            visible = {_subscription_of(a.resource_id) for a in self.accounts.values()}
            subscriptions = self.scopes or tuple(sorted(visible | self.extra_subscriptions))
            return [
                account
                for sub in subscriptions
                for key, account in sorted(self.accounts.items())
                if _subscription_of(key) == sub.lower()
            ]


def _subscription_of(resource_id: str) -> str:
    return resource_id.split("/")[2].lower()
