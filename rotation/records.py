"""Structured log records (CONTRACTS.md "Structured records"). Never a key value (I5)."""

from __future__ import annotations

import json
import logging
from typing import Any

logger = logging.getLogger("rotation")


def error_text(exc: BaseException) -> str:
    """``Class: reason`` — our exceptions never carry key values, so their text is safe to record."""
    return f"{type(exc).__name__}: {exc}"


def log_transition(
    *,
    target: str,
    cycle: str | None,
    step: str,
    slot: str | None,
    trigger: str,
    outcome: str,
    duration_ms: int = 0,
    error: str | None = None,
    level: int | None = None,
) -> None:
    record: dict[str, Any] = {
        "target": target,
        "cycle": cycle,
        "step": step,
        "slot": slot,
        "trigger": trigger,
        "outcome": outcome,
        "durationMs": duration_ms,
        "error": error,
    }
    if level is None:
        level = logging.WARNING if outcome == "failed" else logging.INFO
    logger.log(level, "rotation.transition %s", json.dumps(record, sort_keys=True))


def log_sweep(summary: dict[str, Any]) -> None:
    logger.info("rotation.sweep %s", json.dumps(summary, sort_keys=True))
