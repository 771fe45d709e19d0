"""``TargetStatus`` views: of a known target (configured or discovered) and of a gone one — a state entity
whose target is no longer configured or tagged, or whose account was deleted (not rotated; history kept)."""

from __future__ import annotations

from datetime import datetime

from rotation.model import Target, TargetState
from rotation.views import TargetStatus


def target_status(
    target: Target, state: TargetState | None, now: datetime, default_vault: str
) -> TargetStatus:
    """One target's state as the admin API, the CLI and ``status`` show it (never a key value)."""
    held = bool(state and state.lease_expires_at and state.lease_expires_at > now)
    return TargetStatus(
        target=target.resource_id,
        account_name=target.account_name,
        secret_prefix=target.secret_prefix,
        phase=state.phase.value if state else "unadopted",
        active_slot=state.active_slot.value if state and state.active_slot else None,
        cycle_id=state.cycle_id if state else None,
        due_at=state.due_at if state else None,
        drain_until=state.drain_until if state else None,
        next_attempt_at=state.next_attempt_at if state else None,
        last_rotated_at=state.last_rotated_at if state else None,
        attempts=state.attempts if state else 0,
        last_error=state.last_error if state else None,
        verify=target.verify.value,
        rotation_period_seconds=target.rotation_period.total_seconds(),
        drain_time_seconds=target.drain_time.total_seconds(),
        lease_held=held,
        cycles_completed=state.cycles_completed if state else 0,
        lease_owner=state.lease_owner if held and state else None,
        lease_expires_at=state.lease_expires_at if held and state else None,
        presence=target.source,
        vault_url=target.vault_url or default_vault,
        drain_reason=target.drain_reason,
        consumers=tuple(c.label for c in target.consumers),
        consumers_waiting=state.consumers_waiting if state else None,
        drain_held_since=state.drain_held_since if state else None,
        drain_released_by=state.drain_released_by if state else None,
        drain_ended_by=state.drain_ended_by if state else None,
    )


def gone_status(state: TargetState, now: datetime) -> TargetStatus:
    """What the state still tells; no prefix, period or due date (those came from the configuration)."""
    held = bool(state.lease_expires_at and state.lease_expires_at > now)
    return TargetStatus(
        target=state.target_id,
        account_name=state.target_id.rstrip("/").rsplit("/", 1)[-1],
        secret_prefix="",
        phase=state.phase.value,
        active_slot=state.active_slot.value if state.active_slot else None,
        cycle_id=state.cycle_id,
        due_at=None,
        drain_until=state.drain_until,
        next_attempt_at=None,
        last_rotated_at=state.last_rotated_at,
        attempts=state.attempts,
        last_error=state.last_error,
        verify="",
        rotation_period_seconds=0.0,
        drain_time_seconds=0.0,
        lease_held=held,
        cycles_completed=state.cycles_completed,
        lease_owner=state.lease_owner if held else None,
        lease_expires_at=state.lease_expires_at if held else None,
        presence="gone",
    )
