"""Typed outcomes, end to end. Each is a ``StrEnum``: its value is the stable word that logs, history rows,
JSON responses, KQL alerts and tests match, and the code compares members, never strings."""

from __future__ import annotations

from enum import StrEnum


class StepOutcome(StrEnum):
    """How one step (or a whole cycle, step ``cycle``) ended: the ``outcome`` of a transition record."""

    STARTED = "started"
    SUCCEEDED = "succeeded"
    WAITING = "waiting"
    SKIPPED = "skipped"
    FAILED = "failed"
    REPAIRED = "repaired"  # step ``drift``: a dead active key replaced with the service's value
    HELD = "held"  # ``check_consumers``: the drain's bound is over, a consumer is still off the new key


class TargetOutcome(StrEnum):
    """What one invocation did for a target (``TargetResult.outcome``)."""

    ADVANCED = "advanced"  # at least one step ran
    WAITING = "waiting"  # in a cycle, nothing to do before a stored time (drain, verification retry)
    IDLE = "idle"  # no cycle and none due
    DEFERRED = "deferred"  # due, but the subscription's ARM write budget is spent: a later sweep takes it
    BUSY = "busy"  # another invocation holds the lease, or won the compare-and-swap
    FAILED = "failed"


class RequestStatus(StrEnum):
    STARTED = "started"  # a new cycle was started (and advanced as far as it could go now)
    IN_PROGRESS = "in_progress"  # a cycle was already running: no second cycle; current state returned
    DRAIN_SHORTENED = "drain_shortened"  # emergency on a draining cycle: its drain now ends sooner
    REFUSED = "refused"  # not started; ``message`` says why (recent cycle, backoff, keyless, protection)
    RELEASED = "released"  # an admin released a drain held by consumers (``release_drain``)


class EventDecision(StrEnum):
    """What a Key Vault expiry event led to (``SecretEventOutcome.reason``)."""

    REQUESTED = "requested"  # exactly one plain cycle was asked for
    UNMANAGED_SECRET = "unmanaged_secret"  # noqa: S105 - a reason code, not a password; another vault, a secret no target owns, or one that is gone
    NOT_ROTATED_BY_EVENTS = "not_rotated_by_events"  # a secret other than P-active (the one with ``exp``)
    STALE_VERSION = "stale_version"  # a version that is no longer current
    CYCLE_IN_PROGRESS = "cycle_in_progress"
    REFUSED = "refused"  # whatever ``request_rotation`` did not start


class LifecycleEventType(StrEnum):
    """Event Grid ``eventType`` of the lifecycle events (docs/CONTRACTS.md)."""

    CYCLE_STARTED = "KeyRotation.CycleStarted"
    KEY_SWAPPED = "KeyRotation.KeySwapped"
    CYCLE_COMPLETED = "KeyRotation.CycleCompleted"
    CYCLE_FAILED = "KeyRotation.CycleFailed"
