"""What the service returns (view models), apart from the domain types in ``rotation/model.py``, and the
one serializer that turns any of them into JSON for the admin API, the CLI and log records.

The wire shape is derived, not hand-written: dataclass fields in camelCase, enums as their value, aware
datetimes in ISO 8601, durations in seconds. A field marked ``wire=False`` stays off the wire; a view's
``WIRE_EXTRAS`` names properties that go on it. triggers/openapi.json documents the result.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar

from rotation.outcomes import EventDecision, RequestStatus, TargetOutcome


@dataclass(frozen=True)
class TargetStatus:
    target: str
    account_name: str
    secret_prefix: str
    phase: str
    active_slot: str | None
    cycle_id: str | None
    due_at: datetime | None
    drain_until: datetime | None
    next_attempt_at: datetime | None
    last_rotated_at: datetime | None
    attempts: int
    last_error: str | None
    verify: str
    rotation_period_seconds: float
    drain_time_seconds: float
    lease_held: bool
    cycles_completed: int
    # configured (ROTATION_TARGETS) | discovered (tagged account) | gone (state left by a target that is
    # no longer configured or tagged, or whose account was deleted: not rotated, history kept)
    presence: str = "configured"
    vault_url: str = ""
    drain_reason: str = ""  # "drain 4h10m: API Management named value apim-x/openai-key, 4h bound + margin"
    consumers: tuple[str, ...] = ()  # the declared consumers, as labels
    # the acknowledged drain: consumers last seen off the new key, since when the cycle is held at the end
    # of its bound, who released a held drain, how the last drain ended (acknowledged|bound|released|…)
    consumers_waiting: str | None = None
    drain_held_since: datetime | None = None
    drain_released_by: str | None = None
    drain_ended_by: str | None = None
    lease_owner: str | None = None  # which invocation holds the lease (while ``lease_held``)
    lease_expires_at: datetime | None = None


@dataclass(frozen=True)
class RequestOutcome:
    target: str
    status: RequestStatus
    message: str
    cycle_id: str | None
    state: TargetStatus | None

    WIRE_EXTRAS: ClassVar[tuple[str, ...]] = ("accepted",)

    @property
    def accepted(self) -> bool:
        return self.status in (RequestStatus.STARTED, RequestStatus.DRAIN_SHORTENED)


@dataclass(frozen=True)
class SecretEventOutcome:
    """What a Key Vault expiry event led to; ``reason`` is the code the triggers log and tests match."""

    reason: EventDecision
    detail: str
    target: str | None = None
    current_version: str | None = None
    request: RequestOutcome | None = None

    @property
    def requested(self) -> bool:
        return self.reason is EventDecision.REQUESTED


@dataclass(frozen=True)
class TargetResult:
    """What one ``advance`` invocation did, with the facts its callers need (the cycle it started)."""

    target: str
    outcome: TargetOutcome
    steps: tuple[str, ...] = ()
    phase: str | None = None
    next_due: datetime | None = None
    error: str | None = None
    started_cycle: str | None = field(default=None, metadata={"wire": False})


@dataclass(frozen=True)
class SweepSummary:
    seen: int
    advanced: int
    failed: int
    next_due: datetime | None
    busy: int = 0
    duration_ms: int = 0
    deferred: int = 0  # due, but held back by the subscription's ARM write budget (a later sweep takes them)
    overdue: int = 0  # targets past due + Policy.overdue_grace (the infra "overdue" alert reads it)
    gone: int = 0  # states of targets no longer configured or discovered (not rotated; history kept)
    rejected: int = 0  # tagged accounts not rotated because a tag is invalid (logged with the reason)
    discovery_error: str | None = None  # the account listing failed: the previous target set was used
    not_due: int = 0  # nothing to do now: no cycle due, or waiting for a stored time (drain, retry)
    interrupted: int = 0  # due, but not started because the sweep was asked to stop (CLI Ctrl-C)
    results: tuple[TargetResult, ...] = field(default=(), repr=False, metadata={"wire": False})


@dataclass(frozen=True)
class PlanEntry:
    """What the next sweep would do first for one target (``rotation.decision.decide``; nothing changed)."""

    target: str
    account_name: str
    phase: str
    action: str  # an ``Action`` value: adopt, start_cycle, …, wait, busy
    reason: str
    not_before: datetime | None  # for wait/busy: when something becomes due
    would_run: bool


@dataclass(frozen=True)
class SlotAge:
    """How old one slot's key is, from its slot secret in Key Vault (``P-key1``/``P-key2``): the latest
    version's ``created`` time is when the service stored that value. ``exact`` is true when its
    ``generation`` tag is a cycle id (the service generated the key then); after an adoption or a drift
    repair the key existed before it was stored, so the age is a lower bound."""

    slot: str
    stored_at: datetime | None
    age_seconds: float | None
    generation: str | None
    exact: bool
    active: bool


@dataclass(frozen=True)
class KeyAgeEntry:
    target: str
    account_name: str
    phase: str
    slots: tuple[SlotAge, ...]
    oldest_key_age_seconds: float | None
    last_rotated_at: datetime | None
    next_due_at: datetime | None
    overdue: bool
    rotation_period_seconds: float
    failures_in_window: int
    last_error: str | None


@dataclass(frozen=True)
class KeyAgeReport:
    generated_at: datetime
    window_seconds: float  # failures are counted over this window, back from ``generated_at``
    targets: tuple[KeyAgeEntry, ...]


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def to_json(value: Any) -> Any:
    """A JSON-safe copy of ``value`` (views, domain records, enums, datetimes, collections)."""
    if value is None or isinstance(value, bool | int | str):
        return value.value if isinstance(value, enum.Enum) else value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, enum.Enum):
        return to_json(value.value)
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        wire = {
            camel(f.name): to_json(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.metadata.get("wire", True)
        }
        for name in getattr(value, "WIRE_EXTRAS", ()):
            wire[camel(name)] = to_json(getattr(value, name))
        return wire
    if isinstance(value, Mapping):
        return {camel(str(key)): to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_json(item) for item in value]
    return str(value)
