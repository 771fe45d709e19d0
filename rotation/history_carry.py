"""How history rows reach the history table: once per cycle, carried in the state entity until then.

A cycle spans invocations hours apart (phase 1 ends in the drain). An invocation that does not end the
cycle writes no history entity: its rows ride in the state entity's own last write (``history_carried``),
the compare-and-swap that happens anyway — durable from that moment. The invocation that ends the cycle,
or whose carried rows would outgrow ``HISTORY_CARRY_CHARS``, writes the carried rows and its own as one
history entity (one request), then clears the column with its last state write. Readers merge the carried
rows in (``merged_history``), so a row is visible from the state write that carries it.

Order and crashes (docs/ENGINE.md "History"):

- the history entity is written BEFORE the state write that clears the column: a crash between them leaves
  the rows in both places, never in neither;
- a crash (or a failed state write) leaves the invocation's lease in the state: the next invocation that
  finds a lease it does not own next to carried rows asks the history table which of them are stored
  already (``HistoryStore.stored_since``, one query, only then) and drops those, so a replayed flush never
  writes a row twice;
- rows no successful state write carried (the state write failed) are written to the history table at once
  (after reading the state back, since a write whose answer was lost may have stored them), as before;
- a failed history write is logged (``rotation.history_write_failed``) and never undoes a step, as before.

Rows are told apart by their content (the time to the microsecond included): there is no row id.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from rotation.audit import error_text, logger
from rotation.errors import RotationError
from rotation.model import HistoryRecord, TargetState

if TYPE_CHECKING:
    from rotation.steps.context import StepContext

# The carried rows are one string property of the state entity, which Table storage caps at 64 KiB (a
# UTF-16 string of 32,768 characters; JSON here is ASCII) in an entity of at most 1 MiB (Microsoft Learn,
# "Understanding the Table service data model"; "Scalability and performance targets for Table storage").
# Half a property: a cycle carries ~1.5 KB (three rows), a failing one ~40 rows before it is flushed, and
# the sweep's query, which reads every state entity, stays light.
HISTORY_CARRY_CHARS = 16_000
# bench/cost_variants.py's ``carry`` variant sets False: one history entity per invocation again.
CARRY_HISTORY = True


def rows_chars(rows: Sequence[HistoryRecord]) -> int:
    """The length of the carried column holding ``rows`` (the adapter writes exactly this JSON)."""
    return len(json.dumps([row.to_fields() for row in rows]))


def loaded(ctx: StepContext, state: TargetState | None) -> None:
    """Take the rows the state as read carries; a lease left in it means its holder stopped between
    writes — maybe after writing these rows to the history table."""
    if state is not None and state.history_carried:
        ctx.carried = state.history_carried
        ctx.carried_unchecked = state.lease_owner not in (None, ctx.owner)


def carry(ctx: StepContext, state: TargetState) -> tuple[TargetState, int]:
    """``state`` as a write in the middle of an invocation stores it: carrying the rows of earlier
    invocations and, when they fit, this invocation's rows so far. Also returns how many of this
    invocation's rows the write carries."""
    pending = tuple(ctx.pending_history or ())
    rows = ctx.carried + pending
    if CARRY_HISTORY and rows_chars(rows) <= HISTORY_CARRY_CHARS:
        return state.with_changes(history_carried=rows), len(pending)
    return state.with_changes(history_carried=ctx.carried), 0  # the last write flushes them


def settle(ctx: StepContext, state: TargetState) -> tuple[TargetState, int]:
    """``state`` as the invocation's last write stores it. A cycle that goes on carries every row; one that
    ended (or rows past the bound) goes to the history table first — one entity — and the write clears
    the column."""
    if ctx.carried_unchecked:
        _drop_stored(ctx)
    pending = tuple(ctx.pending_history or ())
    rows = ctx.carried + pending
    if not rows:
        return state.with_changes(history_carried=()), 0
    if CARRY_HISTORY and state.phase.in_cycle and rows_chars(rows) <= HISTORY_CARRY_CHARS:
        return state.with_changes(history_carried=rows), len(pending)
    ctx.history_saved = len(pending)  # handed to the history write (a failed one is logged, as before)
    _write_rows(ctx, rows)
    return state.with_changes(history_carried=()), len(pending)


def flush_unsaved(ctx: StepContext) -> None:
    """When the invocation ends: this invocation's rows that no successful state write carried (a state
    write failed, or the invocation stopped before its last write) go to the history table at once."""
    pending, ctx.pending_history = ctx.pending_history or [], None
    unsaved = pending[ctx.history_saved :]
    if unsaved and ctx.state_write_failed:
        # The failed write may have been stored (its answer lost, or a crash right after it): read back.
        try:
            current = ctx.ports.states.get(ctx.target.state_key)
        except RotationError as exc:
            logger.warning("rotation.history_check_failed %s", error_text(exc))
        else:
            unsaved = unstored(unsaved, current.state.history_carried if current else ())
    _write_rows(ctx, unsaved)


def merged_history(
    carried: Sequence[HistoryRecord], stored: Sequence[HistoryRecord], limit: int
) -> list[HistoryRecord]:
    """The newest ``limit`` rows of the carried ones and the history table's newest ``limit`` (newest
    first). Read the state before the table: a flush between the two reads then shows its rows in both,
    counted once, never in neither."""
    extra = unstored(carried, stored)  # after a crash between a flush and its state write: both hold them
    rows = sorted([*reversed(extra), *stored], key=lambda row: row.at, reverse=True)  # stable: carried first
    return rows[:limit]


def unstored(rows: Iterable[HistoryRecord], stored: Iterable[HistoryRecord]) -> list[HistoryRecord]:
    """``rows`` less one copy of each row found in ``stored``."""
    left = Counter(stored)
    kept = []
    for row in rows:
        if left[row]:
            left[row] -= 1
        else:
            kept.append(row)
    return kept


def _drop_stored(ctx: StepContext) -> None:
    """An invocation stopped between writes; it may have flushed these rows before its last write failed."""
    ctx.carried_unchecked = False
    since = min(row.at for row in ctx.carried)
    try:
        stored = ctx.ports.history.stored_since(ctx.target.state_key, since)
    except RotationError as exc:
        # Keep them: a row written twice is better than a row lost.
        logger.warning("rotation.history_check_failed %s", error_text(exc))
        return
    ctx.carried = tuple(unstored(ctx.carried, stored))


def _write_rows(ctx: StepContext, rows: Sequence[HistoryRecord]) -> None:
    if not rows:
        return
    try:
        ctx.ports.history.append_all(ctx.target.state_key, rows)
    except RotationError as exc:
        # History is an audit trail, not a precondition: a lost row must not undo a done side effect
        # (the structured log records were emitted already).
        logger.warning("rotation.history_write_failed %s (%d rows)", error_text(exc), len(rows))
