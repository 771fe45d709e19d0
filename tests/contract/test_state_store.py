"""StateStore contract: testkit.fakes.FakeStateStore vs shared.table_state.TableStateStore (Azurite)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rotation import history_carry
from rotation.errors import StateConflict
from rotation.model import HistoryRecord, Phase, Slot, TargetState

from .conftest import Backend

AT = datetime(2030, 3, 4, 5, 6, 7, 890_123, tzinfo=UTC)


def every_field_set(target_id: str) -> TargetState:
    return TargetState(
        target_id=target_id, phase=Phase.DRAINING, active_slot=Slot.KEY2, due_at=AT, cycle_id="c-1",
        cycle_started_at=AT, cycle_trigger="admin", cycle_requester="ops@example.com", cycle_reason="leak",
        emergency=True, cycle_drain_seconds=60.0, swapped_at=AT, drain_seconds=3600.0,
        drain_until=AT + timedelta(hours=1), verify_deadline=AT, next_attempt_at=AT, attempts=3,
        last_error="TransientAzureError: arm.list_keys: HTTP 503", last_error_at=AT, last_rotated_at=AT,
        drift_checked_at=AT, cycles_completed=7, endpoint="https://acc.example/", kind="AIServices",
        pointer_version="p1", active_version="a1", inactive_protected_until=AT, lease_owner="owner-1",
        lease_expires_at=AT + timedelta(minutes=5), history_carried=(
            HistoryRecord(target=target_id, at=AT, step="cycle", outcome="started", trigger="admin",
                          requester="ops@example.com", reason="leak", cycle="c-1", slot="key2",
                          emergency=True),
            HistoryRecord(target=target_id, at=AT + timedelta(seconds=1), step="regenerate_new",
                          outcome="failed", cycle="c-1", error="TransientAzureError: arm: HTTP 503",
                          duration_ms=12),
        ),
    )  # fmt: skip


def test_a_missing_state_reads_as_none(backend: Backend, unique_name: str) -> None:
    assert backend.states.get(unique_name) is None
    assert list(backend.states.list_all()) == []


def test_create_then_get_returns_the_same_state_and_etag(backend: Backend, unique_name: str) -> None:
    state = TargetState(target_id="/subscriptions/s/x", phase=Phase.IDLE, active_slot=Slot.KEY1)
    created = backend.states.create(unique_name, state)
    assert created.state == state and created.etag
    read = backend.states.get(unique_name)
    assert read is not None and read.state == state and read.etag == created.etag


def test_every_field_survives_a_round_trip(backend: Backend, unique_name: str) -> None:
    state = every_field_set("/subscriptions/s/full")
    backend.states.create(unique_name, state)
    read = backend.states.get(unique_name)
    assert read is not None and read.state == state


def test_create_of_an_existing_state_conflicts(backend: Backend, unique_name: str) -> None:
    backend.states.create(unique_name, TargetState(target_id="t", phase=Phase.IDLE))
    with pytest.raises(StateConflict):
        backend.states.create(unique_name, TargetState(target_id="t", phase=Phase.REGENERATING))
    read = backend.states.get(unique_name)
    assert read is not None and read.state.phase is Phase.IDLE


IDLE = TargetState(target_id="t", phase=Phase.IDLE)
REGENERATING = TargetState(target_id="t", phase=Phase.REGENERATING)


def test_replace_with_the_current_etag_writes_and_moves_the_etag(backend: Backend, unique_name: str) -> None:
    created = backend.states.create(unique_name, IDLE.with_changes(attempts=2, last_error="x"))
    # A REPLACE, not a merge: a field left at its default is cleared.
    replaced = backend.states.replace(unique_name, REGENERATING, created.etag)
    assert replaced.etag and replaced.etag != created.etag
    read = backend.states.get(unique_name)
    assert read is not None and read.etag == replaced.etag
    assert read.state == REGENERATING


def test_replace_with_a_stale_etag_conflicts_and_writes_nothing(backend: Backend, unique_name: str) -> None:
    created = backend.states.create(unique_name, IDLE)
    current = backend.states.replace(unique_name, REGENERATING, created.etag)
    with pytest.raises(StateConflict):
        backend.states.replace(unique_name, IDLE.with_changes(phase=Phase.DRAINING), created.etag)
    read = backend.states.get(unique_name)
    assert read is not None and read.etag == current.etag and read.state.phase is Phase.REGENERATING


def test_replace_of_a_missing_state_conflicts(backend: Backend, unique_name: str) -> None:
    created = backend.states.create(unique_name + "a", TargetState(target_id="t", phase=Phase.IDLE))
    with pytest.raises(StateConflict):
        backend.states.replace(unique_name + "b", TargetState(target_id="t", phase=Phase.IDLE), created.etag)
    assert backend.states.get(unique_name + "b") is None


def test_list_all_returns_every_state_with_its_current_etag(backend: Backend, unique_name: str) -> None:
    written = {}
    for index in range(3):
        key = f"{unique_name}{index}"
        created = backend.states.create(key, TargetState(target_id=f"t{index}", phase=Phase.IDLE))
        written[key] = created
    key0 = f"{unique_name}0"
    draining = TargetState(target_id="t0", phase=Phase.DRAINING)
    written[key0] = backend.states.replace(key0, draining, written[key0].etag)
    listed = dict(backend.states.list_all())
    assert set(listed) == set(written)
    for key, current in written.items():
        assert (listed[key].state, listed[key].etag) == (current.state, current.etag)


def test_history_rows_carried_up_to_the_bound_round_trip_and_a_replace_clears_them(
    backend: Backend, unique_name: str
) -> None:
    """The carried rows are one string property (Table storage: 64 KiB); the engine flushes them past
    HISTORY_CARRY_CHARS, so a column of that size must be stored and read back whole."""
    rows: list[HistoryRecord] = []
    while True:
        row = HistoryRecord(target="t", at=AT + timedelta(seconds=len(rows)), step="regenerate_new",
                            outcome="failed", error="TransientAzureError: é " + "x" * 300)  # fmt: skip
        if history_carry.rows_chars([*rows, row]) > history_carry.HISTORY_CARRY_CHARS:
            break
        rows.append(row)
    full = TargetState(target_id="t", phase=Phase.REGENERATING, history_carried=tuple(rows))
    created = backend.states.create(unique_name, full)
    read = backend.states.get(unique_name)
    assert read is not None and read.state == full and len(read.state.history_carried) == len(rows) > 20
    backend.states.replace(unique_name, full.with_changes(history_carried=()), created.etag)
    read = backend.states.get(unique_name)
    assert read is not None and read.state.history_carried == ()
