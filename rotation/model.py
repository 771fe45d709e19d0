"""Domain types: targets, slots, phases, policy, the persisted per-target state and history records.

Everything here is a frozen dataclass or an enum; nothing imports an Azure SDK. Key values travel only as
``SecretValue`` whose ``repr``/``str`` never reveal them (invariant I5).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from rotation.consumers import DEFAULT_DRAIN, Consumer

MANAGED_BY = "ai-key-rotation"


class Slot(StrEnum):
    KEY1 = "key1"
    KEY2 = "key2"

    @property
    def other(self) -> Slot:
        return Slot.KEY2 if self is Slot.KEY1 else Slot.KEY1

    @property
    def arm_name(self) -> str:
        """The name ARM's regenerateKey expects (``Key1``/``Key2``)."""
        return "Key1" if self is Slot.KEY1 else "Key2"

    @classmethod
    def parse(cls, text: str | None) -> Slot | None:
        if text is None:
            return None
        try:
            return cls(text.strip().lower())
        except ValueError:
            return None


class VerifyMode(StrEnum):
    DATAPLANE = "dataplane"
    NONE = "none"


class Phase(StrEnum):
    """Where a target stands. A cycle is REGENERATING → VERIFYING → (swap) → DRAINING → RETIRING → IDLE."""

    ADOPTING = "adopting"  # intent recorded: store both keys, the pointer and the active value
    IDLE = "idle"  # no cycle; next one due at ``due_at``
    REGENERATING = "regenerating"  # cycle started: regenerate the inactive slot and store it
    VERIFYING = "verifying"  # new key stored; waiting for the data plane to accept it before the swap
    DRAINING = "draining"  # pointer swapped; consumers' caches pick up the new key until ``drain_until``
    RETIRING = "retiring"  # drain over: regenerate the previously active slot and store it
    KEYLESS = "keyless"  # the account has disableLocalAuth: nothing to rotate, re-checked occasionally

    @property
    def in_cycle(self) -> bool:
        return self in (Phase.REGENERATING, Phase.VERIFYING, Phase.DRAINING, Phase.RETIRING)


def is_overdue(state: TargetState | None, now: datetime, grace: timedelta) -> bool:
    """A rotation was due more than ``grace`` ago and has not completed (keyless targets never are).

    ``due_at`` is set at adoption and moved forward only when a cycle completes, so a cycle stuck in
    verification or backoff keeps its target overdue until it finishes.
    """
    if state is None or state.phase is Phase.KEYLESS or state.due_at is None:
        return False
    return now > state.due_at + grace


class SecretValue:
    """A key value. ``repr``/``str`` are redacted so an accidental log or exception cannot leak it (I5)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "SecretValue(<redacted>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretValue) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


_RESOURCE_ID = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)"
    r"/providers/Microsoft\.CognitiveServices/accounts/(?P<name>[^/]+)$",
    re.IGNORECASE,
)
_TABLE_KEY_FORBIDDEN = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")


def parse_resource_id(resource_id: str) -> tuple[str, str, str]:
    """Return (subscription, resource group, account name) or raise ValueError."""
    match = _RESOURCE_ID.match(resource_id.strip().rstrip("/"))
    if not match:
        raise ValueError(
            "not the ARM id of a Cognitive Services account "
            "(/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.CognitiveServices/accounts/{name})"
        )
    return match.group("sub"), match.group("rg"), match.group("name")


def table_key(resource_id: str) -> str:
    """A Table Storage key for a resource id: ARM ids are case-insensitive, and / \\ # ? are not allowed."""
    return _TABLE_KEY_FORBIDDEN.sub("|", resource_id.strip().rstrip("/").lower())


@dataclass(frozen=True)
class ProbeOverride:
    """A target's own data-plane check (ROTATION_TARGETS ``probe``), for accounts the probe table does not
    fit: ``method`` and ``path`` (relative to the account's endpoint, query included) of a request the
    service authenticates, and the ``header`` that carries the key."""

    method: str
    path: str
    header: str


@dataclass(frozen=True)
class Target:
    """One AI services account under rotation, as configured in ROTATION_TARGETS."""

    resource_id: str
    secret_prefix: str
    rotation_period: timedelta = timedelta(days=30)
    drain_time: timedelta = DEFAULT_DRAIN  # computed from the consumers (rotation.consumers.plan_drain)
    verify: VerifyMode = VerifyMode.DATAPLANE
    probe: ProbeOverride | None = None
    # The vault holding this target's secrets ("" = KEY_VAULT_URL): a fleet spreads Key Vault's
    # per-vault write budget over several vaults (tag ``key-rotation-vault``).
    vault_url: str = ""
    source: str = "configured"  # "configured" (ROTATION_TARGETS) or "discovered" (tagged account)
    consumers: tuple[Consumer, ...] = ()  # who reads P-active (ROTATION_TARGETS ``consumers``, tags)
    drain_reason: str = ""  # why ``drain_time`` is what it is, shown in status and history

    @property
    def subscription_id(self) -> str:
        return parse_resource_id(self.resource_id)[0]

    @property
    def account_name(self) -> str:
        return parse_resource_id(self.resource_id)[2]

    @property
    def state_key(self) -> str:
        """The target's key in the state and history tables."""
        return table_key(self.resource_id)

    def slot_secret(self, slot: Slot) -> str:
        return f"{self.secret_prefix}-{slot.value}"

    @property
    def pointer_secret(self) -> str:
        return f"{self.secret_prefix}-active-key"

    @property
    def active_secret(self) -> str:
        return f"{self.secret_prefix}-active"

    @property
    def secret_names(self) -> tuple[str, ...]:
        return (
            self.slot_secret(Slot.KEY1),
            self.slot_secret(Slot.KEY2),
            self.pointer_secret,
            self.active_secret,
        )


def staggered_due(resource_id: str, period: timedelta, now: datetime) -> datetime:
    """The first due date of a newly adopted target: the next instant after ``now`` at the target's own
    phase within the period. The phase is a hash of the resource id, so a fleet adopted in one sweep is
    spread evenly over the period, the same account always gets the same phase (re-adoption after a
    state loss keeps its slot in the schedule), and no clock read or randomness is involved."""
    seconds = max(1, int(period.total_seconds()))
    digest = hashlib.sha256(resource_id.strip().rstrip("/").lower().encode()).digest()
    phase = int.from_bytes(digest[:8], "big") % seconds
    elapsed = int(now.timestamp()) % seconds
    wait = (phase - elapsed) % seconds or seconds
    return now.replace(microsecond=0) + timedelta(seconds=wait)


@dataclass(frozen=True)
class TargetState:
    """The persisted state of one target (one Table entity). Never holds a key value."""

    target_id: str
    phase: Phase
    active_slot: Slot | None = None
    due_at: datetime | None = None
    cycle_id: str | None = None
    cycle_started_at: datetime | None = None
    cycle_trigger: str | None = None
    cycle_requester: str | None = None
    cycle_reason: str | None = None
    emergency: bool = False
    cycle_drain_seconds: float | None = None  # drain the running cycle will use (emergency shortens it)
    swapped_at: datetime | None = None  # when the pointer last changed (I2 keeps the old slot alive after it)
    drain_seconds: float | None = None  # drain in effect since ``swapped_at``
    drain_until: datetime | None = None
    verify_deadline: datetime | None = None
    next_attempt_at: datetime | None = None  # backoff / verification retry / keyless re-check
    attempts: int = 0
    last_error: str | None = None
    last_error_at: datetime | None = None
    last_rotated_at: datetime | None = None
    drift_checked_at: datetime | None = None
    cycles_completed: int = 0
    endpoint: str | None = None
    kind: str | None = None
    location: str | None = None  # the account's region: Translator's global endpoint needs it
    custom_subdomain: bool | None = None  # None: state written before it was kept (read from ARM)
    # The versions of the pointer and of P-active that the service itself last wrote or reconciled: a
    # different current version means someone else wrote the secret, so the I2 guard reads its history.
    pointer_version: str | None = None
    active_version: str | None = None
    # The inactive slot was named (pointer) or held (P-active) until recently — outside a swap of ours,
    # e.g. a repair or a hand edit: consumers may still use it, so it is not regenerated before this.
    inactive_protected_until: datetime | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    # The acknowledged drain (docs/ENGINE.md "Consumers"): when the consumers are next looked at, when the
    # forced refreshes went out, which consumers were last seen still off the new key (labels), since when
    # the cycle is held at the end of its bound, who released it and why, and how the drain ended
    # (acknowledged | bound | released | emergency).
    consumers_check_at: datetime | None = None
    consumers_refreshed_at: datetime | None = None
    consumers_waiting: str | None = None
    drain_held_since: datetime | None = None
    drain_released_by: str | None = None
    drain_release_reason: str | None = None
    drain_ended_by: str | None = None
    # History rows of invocations that did not end the cycle, carried here until the invocation that ends it
    # (or outgrows the bound) writes them to the history table with its own: one history request per cycle
    # (docs/ENGINE.md "History"). Durable from the state write that carries them; readers merge them in.
    history_carried: tuple[HistoryRecord, ...] = ()

    def with_changes(self, **changes: Any) -> TargetState:
        """A copy with ``changes`` — what ``dataclasses.replace`` returns, without running ``__init__`` on
        every field again (a step makes a dozen copies; ``replace`` was an eighth of the engine threads'
        CPU in a cycle, docs/BENCHMARKS.md §7, seventh pass). The state has no ``__post_init__`` to skip."""
        unknown = changes.keys() - _STATE_FIELDS
        if unknown:
            raise TypeError(f"TargetState has no field {', '.join(sorted(unknown))}")
        copy = object.__new__(type(self))
        vars(copy).update(vars(self))
        vars(copy).update(changes)
        return copy

    def lease_held_by_other(self, owner: str, now: datetime) -> bool:
        return (
            self.lease_owner is not None
            and self.lease_owner != owner
            and self.lease_expires_at is not None
            and self.lease_expires_at > now
        )

    @property
    def new_slot(self) -> Slot | None:
        """The slot being brought into service (before the swap) — the inactive one."""
        return self.active_slot.other if self.active_slot else None


_STATE_FIELDS = frozenset(f.name for f in fields(TargetState))


@dataclass(frozen=True)
class VersionedState:
    """A state entity as read from the store, with the ETag that a compare-and-swap must match."""

    state: TargetState
    etag: str


def state_of(current: VersionedState | None) -> TargetState | None:
    """The state of an entity as read (None when the target has none yet)."""
    return current.state if current is not None else None


@dataclass(frozen=True)
class CycleRequest:
    """A command: start a cycle now (admin, event, CLI)."""

    trigger: str
    requester: str = ""
    reason: str = ""
    force: bool = False
    emergency: bool = False


@dataclass(frozen=True)
class HistoryRecord:
    """One append-only history row. Never a key value."""

    target: str
    at: datetime
    step: str
    outcome: str
    trigger: str = ""
    requester: str = ""
    reason: str = ""
    cycle: str | None = None
    slot: str | None = None
    error: str | None = None
    duration_ms: int = 0
    emergency: bool = False

    def to_fields(self) -> dict[str, Any]:
        """The row as JSON-ready fields (absent ones left out): a history entity's columns, the ``records``
        of an entity holding several rows, and the rows a state entity carries."""
        fields: dict[str, Any] = {
            "target": self.target, "at": self.at.astimezone(UTC).isoformat(), "step": self.step,
            "outcome": self.outcome, "trigger": self.trigger, "requester": self.requester,
            "reason": self.reason, "cycle": self.cycle, "slot": self.slot, "error": self.error,
            "duration_ms": self.duration_ms, "emergency": self.emergency,
        }  # fmt: skip
        return {k: v for k, v in fields.items() if v is not None}

    @classmethod
    def from_fields(cls, fields: Any) -> HistoryRecord:
        """The inverse of ``to_fields`` (also reads a one-row entity written by earlier versions)."""
        return cls(
            target=fields["target"], at=datetime.fromisoformat(fields["at"]), step=fields["step"],
            outcome=fields["outcome"], trigger=fields.get("trigger", ""),
            requester=fields.get("requester", ""), reason=fields.get("reason", ""), cycle=fields.get("cycle"),
            slot=fields.get("slot"), error=fields.get("error"), duration_ms=int(fields.get("duration_ms", 0)),
            emergency=bool(fields.get("emergency")),
        )  # fmt: skip


@dataclass(frozen=True)
class Policy:
    """Engine-wide timings (per-target period/drain live on ``Target``)."""

    verify_timeout: timedelta = timedelta(minutes=10)
    verify_retry_interval: timedelta = timedelta(seconds=15)
    emergency_drain_time: timedelta = timedelta(0)
    # A step starts only with more than half the lease left, so half the lease must exceed the slowest
    # step: 3 Azure calls, each bounded by shared.bootstrap.CLIENT_OPTIONS["timeout"] (40 s) plus a
    # Retry-After wait. 10 minutes leaves 5 for that; a crashed holder's work resumes within 10.
    lease_duration: timedelta = timedelta(minutes=10)
    backoff_base: timedelta = timedelta(minutes=1)
    backoff_max: timedelta = timedelta(hours=6)
    drift_check_interval: timedelta = timedelta(hours=6)
    keyless_recheck_interval: timedelta = timedelta(hours=24)
    expiry_margin: timedelta = timedelta(days=30)  # P-active exp = last rotation + period + this
    # How late a rotation may be before the sweep counts the target as overdue (alerted on in Azure):
    # long enough for a failed cycle's backoff retries, short enough to be noticed within a day.
    overdue_grace: timedelta = timedelta(days=1)

    def backoff(self, attempts: int) -> timedelta:
        """Exponential backoff after ``attempts`` consecutive failures (1 → base)."""
        exponent = max(0, min(attempts - 1, 20))
        return min(self.backoff_max, self.backoff_base * (2**exponent))
