"""The fan-out queue message (no SDK import: the timer's module loads it at startup)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence

# Targets one message may name. Its invocation runs them side by side, one thread each (as a sweep does),
# so this is also that invocation's concurrency; the host runs several messages at once
# (host.json ``batchSize``), so a wave is still spread over instances. 16 ids of at most 1,024 characters
# (what the queue trigger accepts) stay under ``triggers.queue_handler.MAX_MESSAGE_BYTES``.
MAX_TARGETS_PER_MESSAGE = 16


def fanout_message(*resource_ids: str) -> str:
    """``{"target": "<resource id>"}`` for one target, ``{"targets": [...]}`` for several (at most
    MAX_TARGETS_PER_MESSAGE): what the timer's output binding and the scheduler both write."""
    if len(resource_ids) == 1:
        return json.dumps({"target": resource_ids[0]})
    return json.dumps({"targets": list(resource_ids)})


def target_groups(resource_ids: Sequence[str]) -> Iterator[Sequence[str]]:
    """``resource_ids`` in groups of at most MAX_TARGETS_PER_MESSAGE, one message each. Why group: each
    message is a Put Message, an invocation and its state reads' worth of records; at the write budgets'
    pace several targets come due in the same second (docs/ENGINE.md "Budgets across instances")."""
    for start in range(0, len(resource_ids), MAX_TARGETS_PER_MESSAGE):
        yield resource_ids[start : start + MAX_TARGETS_PER_MESSAGE]
