"""HistoryStore contract: testkit.fakes.FakeHistory vs shared.table_state.TableHistoryStore (Azurite)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rotation.model import HistoryRecord

from .conftest import Backend

T = datetime(2030, 6, 1, 12, 0, 0, 123_456, tzinfo=UTC)


def record(minutes: int, step: str = "regenerate", **fields: object) -> HistoryRecord:
    return HistoryRecord(
        target="/subscriptions/s/acc", at=T + timedelta(minutes=minutes), step=step, outcome="succeeded",
        trigger="timer", **fields,  # type: ignore[arg-type]
    )  # fmt: skip


def test_an_empty_history_lists_nothing(backend: Backend, unique_name: str) -> None:
    assert backend.history.list(unique_name) == []


def test_records_are_listed_newest_first_up_to_the_limit(backend: Backend, unique_name: str) -> None:
    records = [record(minutes, step=f"s{minutes}") for minutes in range(5)]
    for r in records:
        backend.history.append(unique_name, r)
    assert backend.history.list(unique_name) == list(reversed(records))
    assert backend.history.list(unique_name, limit=2) == [records[4], records[3]]
    assert backend.history.list(unique_name, limit=1) == [records[4]]


def test_newest_first_means_by_time_not_by_append_order(backend: Backend, unique_name: str) -> None:
    early, late, middle = record(0, "early"), record(10, "late"), record(5, "middle")
    for r in (early, late, middle):
        backend.history.append(unique_name, r)
    assert [r.step for r in backend.history.list(unique_name)] == ["late", "middle", "early"]


def test_every_field_survives_a_round_trip(backend: Backend, unique_name: str) -> None:
    full = record(
        1, requester="ops@example.com", reason="leak", cycle="c-1", slot="key2",
        error="TransientAzureError: arm.list_keys: HTTP 503", duration_ms=1234, emergency=True,
    )  # fmt: skip
    backend.history.append(unique_name, full)
    assert backend.history.list(unique_name) == [full]


def test_histories_of_different_targets_are_apart(backend: Backend, unique_name: str) -> None:
    backend.history.append(unique_name + "a", record(0, "a"))
    backend.history.append(unique_name + "b", record(1, "b"))
    assert [r.step for r in backend.history.list(unique_name + "a")] == ["a"]
    assert [r.step for r in backend.history.list(unique_name + "b")] == ["b"]


def test_stored_since_returns_every_row_at_or_after_the_time(backend: Backend, unique_name: str) -> None:
    assert backend.history.stored_since(unique_name, T) == []
    early, together = record(0, step="early"), [record(m, step=f"t{m}") for m in (5, 6, 7)]
    backend.history.append(unique_name, early)
    backend.history.append_all(unique_name, together)
    backend.history.append(unique_name, record(9, step="late"))
    since_six = backend.history.stored_since(unique_name, T + timedelta(minutes=6))
    assert {r.step for r in since_six} >= {"t6", "t7", "late"}  # t5 may come along: stored with t6, t7
    assert "early" not in {r.step for r in since_six}
    assert sorted(r.step for r in backend.history.stored_since(unique_name, T)) == sorted(
        ["early", "t5", "t6", "t7", "late"]
    )
    assert backend.history.stored_since(unique_name, T + timedelta(minutes=10)) == []
