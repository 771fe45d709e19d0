"""Fan-out queue messages (one target or a group) → `service.advance_targets`.

A message that can never succeed (not JSON, wrong shape, unknown target) is logged as
`rotation.queue_message_rejected` and completed, so it does not cycle through retries. A transient failure
raises: the host makes the message visible again and, after `maxDequeueCount` (host.json) attempts,
moves it to `<queue>-poison`, where it stays for an operator.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from rotation.views import to_json
from shared.fanout import MAX_TARGETS_PER_MESSAGE
from triggers import records
from triggers.runtime import Runtime

# Queue Storage holds 64 KiB per message; the trigger's messages are base64 (host.json's default), so 48 KiB
# of JSON. A group names at most MAX_TARGETS_PER_MESSAGE targets.
MAX_MESSAGE_BYTES = 48 * 1024
MAX_TARGET_CHARS = 1024


class RejectedMessage(ValueError):
    pass


def _name(value: object) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TARGET_CHARS:
        raise RejectedMessage(
            f"a target must be a non-empty string of at most {MAX_TARGET_CHARS} characters"
        )
    return value


def parse_message(body: bytes) -> tuple[str, ...]:
    """``{"target": "<resource id or account name>"}`` or ``{"targets": [...]}`` (1 to
    MAX_TARGETS_PER_MESSAGE of them, what the scheduler sends for targets due in the same second) → the
    targets; or raise RejectedMessage."""
    if len(body) > MAX_MESSAGE_BYTES:
        raise RejectedMessage("message too large")
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise RejectedMessage("message is not JSON") from error
    if not isinstance(document, dict):
        raise RejectedMessage("message is not a JSON object")
    if ("target" in document) == ("targets" in document):
        raise RejectedMessage('message needs exactly one of "target" (a string) and "targets" (a list)')
    if "target" in document:
        try:
            return (_name(document["target"]),)
        except RejectedMessage:
            raise RejectedMessage("message has no target string") from None
    targets = document["targets"]
    if not isinstance(targets, list) or not 1 <= len(targets) <= MAX_TARGETS_PER_MESSAGE:
        raise RejectedMessage(f'"targets" must be a list of 1 to {MAX_TARGETS_PER_MESSAGE} target strings')
    return tuple(_name(target) for target in targets)


def handle_queue_message(message: Any, runtime: Runtime) -> None:
    context: dict[str, Any] = {"messageId": getattr(message, "id", None),
                               "dequeueCount": getattr(message, "dequeue_count", None)}
    try:
        targets = parse_message(message.get_body())
    except RejectedMessage as error:
        records.emit("rotation.queue_message_rejected", logging.WARNING, reason=str(error), **context)
        return
    try:  # a lone target on this thread; a group side by side, as a sweep runs them
        results, unknown = runtime.service.advance_targets(targets, trigger="queue")
    except Exception as error:
        # Re-running the whole group is safe: each target's steps check whether their work is done.
        records.emit("rotation.queue_retry", logging.WARNING, target=records.clip(", ".join(targets)),
                     error=f"{type(error).__name__}: {records.clip(str(error))}", **context)
        raise
    for target in unknown:
        records.emit("rotation.queue_message_rejected", logging.WARNING, reason="unknown target",
                     target=records.clip(target), **context)
    for result in results:
        records.emit("rotation.queue_advanced", target=records.clip(result.target), result=to_json(result),
                     **context)
