"""Read-only reports over every target, for operators and auditors: the plan (what the next sweep would do,
from the pure ``decide``) and the key-age report. Neither writes anything: no state, no history, no table
created (the Table adapter's reads create nothing)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from rotation.decision import decide
from rotation.history_carry import merged_history
from rotation.model import Phase, Slot, Target, TargetState, is_overdue
from rotation.outcomes import StepOutcome
from rotation.vault_layout import slot_age
from rotation.views import KeyAgeEntry, KeyAgeReport, PlanEntry, SlotAge

if TYPE_CHECKING:
    from rotation.service import RotationService

# History rows read per target to count failures in the window: one Table page (1,000 rows).
FAILURE_ROWS = 1000


def plan(service: RotationService) -> list[PlanEntry]:
    """Per target, the first step the next sweep would take now, and why. The sweep may then run further
    steps in the same invocation, and the ARM write budget may defer a due target: neither is predicted."""
    now = service.clock()
    loaded = dict(service.ports.states.list_all())
    entries = []
    for target in service.targets:
        current = loaded.get(target.state_key)
        state = current.state if current else None
        decision = decide(state, target, now, service.policy, owner="")
        entries.append(
            PlanEntry(
                target=target.resource_id,
                account_name=target.account_name,
                phase=state.phase.value if state else "unadopted",
                action=decision.action.value,
                reason=decision.reason,
                not_before=decision.not_before,
                would_run=decision.actionable,
            )
        )
    return entries


def key_age(service: RotationService, window: timedelta = timedelta(days=30)) -> KeyAgeReport:
    """Per target: the age of each slot's key (Key Vault), last rotation, next due, overdue, and the
    failed steps recorded in history (and still carried in the state) over ``window``. Two Key Vault reads
    and one history query per target, run ``service.concurrency`` at a time."""
    now = service.clock()
    loaded = dict(service.ports.states.list_all())

    def one(target: Target) -> KeyAgeEntry:
        current = loaded.get(target.state_key)
        return _entry(service, target, current.state if current else None, now, window)

    with ThreadPoolExecutor(max_workers=min(service.concurrency, max(1, len(service.targets)))) as pool:
        entries = tuple(pool.map(one, service.targets))
    return KeyAgeReport(generated_at=now, window_seconds=window.total_seconds(), targets=entries)


def _entry(
    service: RotationService, target: Target, state: TargetState | None, now: datetime, window: timedelta
) -> KeyAgeEntry:
    active = state.active_slot if state else None
    slots: tuple[SlotAge, ...] = ()
    if state is not None and state.phase is not Phase.ADOPTING:  # before adoption there is no slot secret
        slots = tuple(slot_age(service.ports.secrets, target, slot, active, now) for slot in Slot)
    ages = [s.age_seconds for s in slots if s.age_seconds is not None]
    since = now - window
    stored = service.ports.history.list(target.state_key, FAILURE_ROWS)  # read after the state
    failures = sum(
        1
        for record in merged_history(state.history_carried if state else (), stored, FAILURE_ROWS)
        if record.outcome == StepOutcome.FAILED.value and record.at >= since
    )
    return KeyAgeEntry(
        target=target.resource_id,
        account_name=target.account_name,
        phase=state.phase.value if state else "unadopted",
        slots=slots,
        oldest_key_age_seconds=max(ages) if ages else None,
        last_rotated_at=state.last_rotated_at if state else None,
        next_due_at=state.due_at if state else None,
        overdue=is_overdue(state, now, service.policy.overdue_grace),
        rotation_period_seconds=target.rotation_period.total_seconds(),
        failures_in_window=failures,
        last_error=state.last_error if state else None,
    )
