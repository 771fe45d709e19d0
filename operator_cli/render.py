"""How the CLI shows things: times with their zone, tables (rich), JSON and CSV. Presentation only."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from rotation.outcomes import TargetOutcome
from rotation.views import KeyAgeReport, PlanEntry, TargetResult, TargetStatus, to_json

# Sweeps with more results than this list only what needs attention unless --all is given.
BIG_SWEEP = 20
# Summary order: what needs attention first.
OUTCOME_ORDER = (
    TargetOutcome.FAILED,
    TargetOutcome.BUSY,
    TargetOutcome.DEFERRED,
    TargetOutcome.ADVANCED,
    TargetOutcome.WAITING,
    TargetOutcome.IDLE,
)


def consoles() -> tuple[Console, Console]:
    """stdout and stderr. Off a terminal nothing is wrapped at 80 columns (resource ids stay whole)."""
    out = Console(soft_wrap=not sys.stdout.isatty())
    err = Console(stderr=True, soft_wrap=True)
    return out, err


def when(value: datetime | None) -> str:
    """A time in the operator's local zone, with the zone named (``2026-03-01 14:05:09 CET``)."""
    if value is None:
        return ""
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    if days:
        return f"{days}d {rest // 3600}h"
    if rest >= 3600:
        return f"{rest // 3600}h {rest % 3600 // 60:02d}m"
    return f"{rest // 60}m {rest % 60:02d}s"


def print_json(value: Any) -> None:
    """JSON for scripts: plain text, never wrapped or coloured."""
    sys.stdout.write(json.dumps(to_json(value), indent=2, sort_keys=True) + "\n")


def sweep_results(results: Sequence[TargetResult], show_all: bool) -> tuple[Table | None, int]:
    """The sweep's per-target table, worst first then by name; big sweeps keep failures only."""
    order = {outcome: index for index, outcome in enumerate(OUTCOME_ORDER)}
    rows = sorted(results, key=lambda r: (order.get(r.outcome, 99), r.target.rsplit("/", 1)[-1].lower()))
    hidden = 0
    if len(rows) > BIG_SWEEP and not show_all:
        kept = [r for r in rows if r.outcome is TargetOutcome.FAILED]
        hidden, rows = len(rows) - len(kept), kept
    if not rows:
        return None, hidden
    table = Table("target", "outcome", "steps", "phase", "next due", "error", title="sweep")
    for result in rows:
        table.add_row(
            result.target.rsplit("/", 1)[-1],
            result.outcome.value,
            " ".join(result.steps),
            result.phase or "",
            when(result.next_due),
            result.error or "",
        )
    return table, hidden


def statuses(items: Iterable[TargetStatus]) -> Table:
    table = Table(
        "account", "phase", "active", "due", "drain until", "next attempt", "lease", "attempts", "last error"
    )
    for s in items:
        lease = ""
        if s.lease_held and s.lease_owner:
            lease = f"{s.lease_owner[:8]}… until {when(s.lease_expires_at)}"
        table.add_row(
            s.account_name,
            # a drain held by a consumer still off the new key: the operator must act (release or fix it)
            f"{s.phase} (held: {s.consumers_waiting})" if s.drain_held_since else s.phase,
            s.active_slot or "",
            when(s.due_at),
            when(s.drain_until),
            when(s.next_attempt_at),
            lease,
            str(s.attempts),
            s.last_error or "",
        )
    return table


def plan(entries: Iterable[PlanEntry]) -> Table:
    table = Table("account", "phase", "next sweep", "why", "not before", title="plan (nothing changed)")
    for e in entries:
        table.add_row(
            e.account_name,
            e.phase,
            e.action if e.would_run else f"({e.action})",
            e.reason,
            when(e.not_before),
        )
    return table


REPORT_COLUMNS = (
    "account", "phase", "active slot", "key1 age", "key2 age", "oldest", "last rotated", "next due",
    "overdue", "failures", "last error",
)  # fmt: skip


def report_rows(report: KeyAgeReport, text: bool) -> list[list[str]]:
    """One row per target. A lower-bound age (adopted or repaired key) is marked with ``≥`` in text."""
    rows = []
    for e in report.targets:
        ages = {s.slot: s for s in e.slots}
        cells = []
        for slot in ("key1", "key2"):
            age = ages.get(slot)
            if age is None or age.age_seconds is None:
                cells.append("")
            elif text:
                cells.append(("" if age.exact else "≥") + duration(age.age_seconds))
            else:
                cells.append(str(int(age.age_seconds)))
        active = next((s.slot for s in e.slots if s.active), "")
        oldest = e.oldest_key_age_seconds
        rows.append([
            e.account_name, e.phase, active, *cells,
            duration(oldest) if text else ("" if oldest is None else str(int(oldest))),
            when(e.last_rotated_at) if text else (e.last_rotated_at.isoformat() if e.last_rotated_at else ""),
            when(e.next_due_at) if text else (e.next_due_at.isoformat() if e.next_due_at else ""),
            "yes" if e.overdue else "no", str(e.failures_in_window), e.last_error or "",
        ])  # fmt: skip
    return rows


def report_table(report: KeyAgeReport) -> Table:
    days = int(report.window_seconds // 86400)
    title = f"key age at {when(report.generated_at)} (failures: last {days} days)"
    table = Table(
        *REPORT_COLUMNS,
        title=title,
        caption="≥: adopted or repaired key, existed before the service stored it (a lower bound)",
    )
    for row in report_rows(report, text=True):
        table.add_row(*row)
    return table


def report_csv(report: KeyAgeReport) -> str:
    """CSV for spreadsheets and auditors: ages in seconds, times in ISO 8601 with their offset."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        [c.replace(" ", "_") + ("_seconds" if c.endswith(("age", "oldest")) else "") for c in REPORT_COLUMNS]
    )
    writer.writerows(report_rows(report, text=False))
    return buffer.getvalue()
