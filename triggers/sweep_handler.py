"""The timer's sweep: one call into the engine, one summary record.

The engine's sweep advances every due target with bounded concurrency and isolates each target's failure;
what is left here is the summary line and the timer's own facts (past due).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from triggers import records
from triggers.runtime import Runtime
from triggers.serialize import to_json


def run_sweep(timer: Any, runtime: Runtime) -> None:
    started = time.monotonic()
    past_due = bool(getattr(timer, "past_due", False))
    try:
        summary = runtime.service.sweep(trigger="timer")
    except Exception as error:
        # A sweep-wide failure (state table unreachable, ...) fails this run loudly; the next schedule
        # tries again — timer triggers are never retried by the host.
        records.emit("rotation.sweep_failed", logging.ERROR, pastDue=past_due,
                     error=f"{type(error).__name__}: {records.clip(str(error))}")
        raise
    records.emit("rotation.sweep", pastDue=past_due, durationMs=round((time.monotonic() - started) * 1000),
                 **_summary_fields(summary))


def _summary_fields(summary: Any) -> dict[str, Any]:
    return {
        "seen": getattr(summary, "seen", None),
        "advanced": getattr(summary, "advanced", None),
        "failed": getattr(summary, "failed", None),
        "nextDue": to_json(getattr(summary, "next_due", None)),
    }
