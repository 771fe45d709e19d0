"""The fan-out queue message (no SDK import: the timer's module loads it at startup)."""

from __future__ import annotations

import json


def fanout_message(resource_id: str) -> str:
    """``{"target": "<resource id>"}``: what the timer's output binding and the scheduler both write."""
    return json.dumps({"target": resource_id})
