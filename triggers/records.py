"""Trigger-level structured log records: one line `<name> {json}`, like the engine's `rotation.transition`."""

from __future__ import annotations

import json
import logging
from typing import Any

logger = logging.getLogger("rotation.functions")

# Anything echoed from untrusted input (event fields, route params) is clipped so a hostile payload
# cannot flood the logs; it is still JSON-escaped, so it cannot forge a second record either.
_MAX_ECHO = 200


def clip(value: object, limit: int = _MAX_ECHO) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def emit(name: str, level: int = logging.INFO, /, **fields: Any) -> None:
    """Log one structured record. Callers pass identifiers and reasons only, never a key value (I5)."""
    body = json.dumps({k: v for k, v in fields.items() if v is not None}, sort_keys=True, default=str)
    logger.log(level, "%s %s", name, body)
