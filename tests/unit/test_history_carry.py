"""One history request per cycle (issue 17): the rows of an invocation that does not end the cycle ride in the
state entity's own write; the invocation that ends it writes them and its own as one history entity. Nothing
lost across crashes and failed writes, nothing written twice, every reader sees the carried rows."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from rotation import history_carry
from rotation.errors import TransientAzureError
from rotation.model import HistoryRecord, Phase, Policy
from rotation.service import RotationService
from testkit.watch import PortCall, SimulatedCrash, Watcher, watch
from tests.unit.rig import Rig, make_rig, transient

PHASE_ONE = [("cycle", "started"), ("regenerate_new", "succeeded"), ("verify_and_swap", "succeeded")]


class FailOnce(Watcher):
    """Raises ``error`` before the ``nth`` call of ``operation`` (``after``: right after it returned)."""

    def __init__(self, operation: str, nth: int, error: BaseException, after: bool = False) -> None:
        self.operation, self.nth, self.error, self.on_return = operation, nth, error, after
        self.seen = 0

    def before(self, call: PortCall) -> None:
        if call.operation == self.operation and not self.on_return:
            self._maybe_raise()

    def after(self, call: PortCall, error: BaseException | None) -> None:
        if call.operation == self.operation and self.on_return and error is None:
            self._maybe_raise()

    def _maybe_raise(self) -> None:
        self.seen += 1
        if self.seen == self.nth:
            raise self.error


def another_process(rig: Rig, *watchers: Watcher) -> RotationService:
    """A new service over the same stores (what a new Functions worker sees), watched by ``watchers``."""
    return RotationService(
        rig.targets, watch(rig.service.ports, *watchers), Policy(), clock=rig.clock, concurrency=1,
        vault_url="https://kv.vault.azure.net/",
    )  # fmt: skip


def in_drain() -> Rig:
    """A target adopted, then through phase 1 (regenerate, verify, swap): draining, its rows carried."""
    rig = make_rig()
    rig.service.sweep()
    rig.clock.advance(days=30)
    rig.service.sweep()
    return rig


def table_rows(rig: Rig) -> list[HistoryRecord]:
    """What the history table itself holds for the target (not the carried rows)."""
    return list(rig.history.rows.get(rig.target().state_key, []))


def steps(rows: list[HistoryRecord]) -> list[tuple[str, str]]:
    return sorted((r.step, r.outcome) for r in rows)


def test_a_cycle_makes_one_history_request_phase_one_none() -> None:
    rig = make_rig()
    rig.service.sweep()  # adoption: an invocation that ends at rest writes its rows at once, as before
    assert rig.calls.get("history.append_all") == 1 and not rig.state().history_carried  # type: ignore[union-attr]
    rig.clock.advance(days=30)
    rig.calls.clear()
    rig.service.sweep()  # phase 1: regenerate, verify, swap; ends in the drain
    assert rig.calls.get("history.append_all", 0) + rig.calls.get("history.append", 0) == 0
    assert rig.calls.get("states.replace") == 2  # no extra state write either
    carried = rig.state().history_carried  # type: ignore[union-attr]
    assert steps(list(carried)) == sorted(PHASE_ONE)
    rig.clock.advance(days=1)
    rig.calls.clear()
    rig.service.sweep()  # phase 2: retire, cycle over
    assert rig.calls.get("history.append_all") == 1 and rig.calls.get("history.append", 0) == 0
    assert rig.calls.get("history.stored_since", 0) == 0  # no crash: nothing to check
    assert rig.state().phase is Phase.IDLE and rig.state().history_carried == ()  # type: ignore[union-attr]
    cycle = [r for r in table_rows(rig) if r.cycle is not None]
    assert steps(cycle) == sorted([*PHASE_ONE, ("retire_old", "succeeded")])


def test_a_process_lost_between_phase_one_and_two_loses_no_row_and_the_view_shows_them_at_once() -> None:
    rig = make_rig()
    rig.service.sweep()
    rig.clock.advance(days=30)
    rig.service.sweep()  # phase 1 in one process ...
    assert not [r for r in table_rows(rig) if r.cycle is not None]  # ... writes no history entity
    later = another_process(rig)  # ... which is gone; hours later another worker serves the admin API
    view = later.history("acc1")
    assert steps([r for r in view if r.cycle is not None]) == sorted(PHASE_ONE)
    assert [r.step for r in view][:3] == ["verify_and_swap", "regenerate_new", "cycle"]  # newest first
    assert later.history("acc1", limit=1)[0].step == "verify_and_swap"
    rig.clock.advance(days=1)
    later.sweep()  # phase 2 in the new process
    cycle = [r for r in table_rows(rig) if r.cycle is not None]
    assert steps(cycle) == sorted([*PHASE_ONE, ("retire_old", "succeeded")])
    assert Counter(later.history("acc1", limit=100)) == Counter(table_rows(rig))


def test_a_crash_after_the_flush_before_the_state_write_writes_no_row_twice() -> None:
    rig = in_drain()
    rig.clock.advance(days=1)
    crash = FailOnce("history.append_all", 1, SimulatedCrash("worker died"), after=True)
    dying = another_process(rig, crash)
    with pytest.raises(SimulatedCrash):
        dying.sweep()  # phase 2: the old key is retired, the rows are written, the process dies
    state = rig.state()
    assert state is not None and state.phase is Phase.RETIRING and state.history_carried  # both hold them
    assert len(dying.history("acc1", limit=100)) == len(table_rows(rig))  # the view counts them once
    rig.clock.advance(minutes=11)  # the dead worker's lease expires
    replay = another_process(rig, counter := FailOnce("never", 0, RuntimeError()))
    replay.sweep()
    assert counter.seen == 0
    state = rig.state()
    assert state is not None and state.phase is Phase.IDLE and state.history_carried == ()
    rows = table_rows(rig)
    assert [row for row, n in Counter(rows).items() if n > 1] == []  # nothing written twice
    assert steps([r for r in rows if r.step != "retire_old" and r.cycle]) == sorted(PHASE_ONE)
    rig.check_invariants()


def test_only_a_state_left_with_a_lease_makes_the_engine_look_for_rows_stored_already() -> None:
    rig = in_drain()
    rig.clock.advance(days=1)
    with pytest.raises(SimulatedCrash):
        another_process(rig, FailOnce("history.append_all", 1, SimulatedCrash("died"), after=True)).sweep()
    rig.clock.advance(minutes=11)
    rig.calls.clear()
    rig.service.sweep()
    assert rig.calls.get("history.stored_since") == 1 and rig.calls.get("history.append_all") == 1


def test_a_failed_last_state_write_sends_the_rows_it_carried_to_the_history_table() -> None:
    rig = make_rig()
    rig.service.sweep()
    rig.clock.advance(days=30)
    failing = another_process(rig, FailOnce("states.replace", 2, transient("table.update_entity")))
    assert failing.sweep().failed == 1  # phase 1's steps ran; the DRAINING write did not
    assert steps([r for r in table_rows(rig) if r.cycle]) == sorted(PHASE_ONE)  # written at once instead
    assert rig.state().history_carried == ()  # type: ignore[union-attr]
    rig.clock.advance(minutes=11)
    rig.service.sweep()  # resumes the cycle (the swap is found done) and drains
    rig.clock.advance(days=1)
    rig.service.sweep()
    rows = table_rows(rig)
    assert rig.state().phase is Phase.IDLE and [r for r, n in Counter(rows).items() if n > 1] == []  # type: ignore[union-attr]


def test_a_state_write_stored_although_its_answer_was_lost_is_not_written_again() -> None:
    rig = make_rig()
    rig.service.sweep()
    rig.clock.advance(days=30)
    lost_answer = FailOnce("states.replace", 2, transient("table.update_entity"), after=True)
    another_process(rig, lost_answer).sweep()  # the DRAINING write is stored; its answer never comes
    assert rig.state().phase is Phase.DRAINING and len(rig.state().history_carried) == 3  # type: ignore[union-attr]
    assert not [r for r in table_rows(rig) if r.cycle]  # read back: carried, so not written now
    rig.clock.advance(days=1)
    rig.service.sweep()
    rows = table_rows(rig)
    assert [r for r, n in Counter(rows).items() if n > 1] == [] and len([r for r in rows if r.cycle]) == 4


def test_a_failed_history_write_is_logged_and_never_undoes_the_cycle(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rig = in_drain()
    rig.clock.advance(days=1)
    broken = another_process(rig, FailOnce("history.append_all", 1, TransientAzureError("table: HTTP 503")))
    with caplog.at_level("WARNING", logger="rotation"):
        assert broken.sweep().advanced == 1
    assert rig.state().phase is Phase.IDLE and rig.state().cycles_completed == 1  # type: ignore[union-attr]
    assert any("rotation.history_write_failed" in r.getMessage() and "4 rows" in r.getMessage()
               for r in caplog.records)  # fmt: skip


def test_rows_past_the_bound_are_written_mid_cycle_and_the_column_stays_under_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(history_carry, "HISTORY_CARRY_CHARS", 2_000)
    rig = make_rig()
    rig.service.sweep()
    rig.clock.advance(days=30)
    sizes = []
    for _ in range(12):  # a cycle whose regenerate keeps failing: one failure row per retry
        rig.world.faults["arm.regenerate_key"] = [transient("arm.regenerate_key")]
        rig.service.sweep()
        state = rig.state()
        assert state is not None and state.phase is Phase.REGENERATING
        sizes.append(history_carry.rows_chars(state.history_carried))
        rig.clock.advance(hours=7)
    assert max(sizes) <= 2_000
    written = [r for r in table_rows(rig) if r.outcome == "failed"]
    assert written, "rows past the bound went to the history table before the cycle ended"
    failed = [r for r in rig.history_rows() if r.outcome == "failed"]
    assert len(failed) == 12 and len(set(failed)) == 12  # every failure, once, in the view


def test_the_key_age_report_counts_failures_still_carried() -> None:
    rig = make_rig()
    rig.service.sweep()
    rig.clock.advance(days=30)
    rig.world.faults["arm.regenerate_key"] = [transient("arm.regenerate_key")]
    rig.service.sweep()
    assert not [r for r in table_rows(rig) if r.outcome == "failed"]  # carried, not in the table yet
    [entry] = rig.service.key_age_report(window=timedelta(days=1)).targets
    assert entry.failures_in_window == 1


def test_merged_history_counts_a_row_held_in_both_places_once_and_keeps_the_limit() -> None:
    rig = in_drain()
    carried = list(rig.state().history_carried)  # type: ignore[union-attr]
    stored = sorted(carried[:2] + table_rows(rig), key=lambda r: r.at, reverse=True)  # as after a crash
    merged = history_carry.merged_history(carried, stored, 100)
    assert Counter(merged) == Counter(carried + table_rows(rig))  # each once
    assert [r.at for r in merged] == sorted((r.at for r in merged), reverse=True)
    assert history_carry.merged_history(carried, stored, 2) == merged[:2]
