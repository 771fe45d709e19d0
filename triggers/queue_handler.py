"""Fan-out queue messages → `service.advance_target` for one target.

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
from triggers import records
from triggers.runtime import Runtime

MAX_MESSAGE_BYTES = 8 * 1024


class RejectedMessage(ValueError):
    pass


def parse_message(body: bytes) -> str:
    """`{"target": "<resource id or account name>"}` → the target; or raise RejectedMessage."""
    if len(body) > MAX_MESSAGE_BYTES:
        raise RejectedMessage("message too large")
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise RejectedMessage("message is not JSON") from error
    if not isinstance(document, dict):
        raise RejectedMessage("message is not a JSON object")
    target = document.get("target")
    if not isinstance(target, str) or not target.strip() or len(target) > 1024:
        raise RejectedMessage("message has no target string")
    return target


def handle_queue_message(message: Any, runtime: Runtime) -> None:
    from rotation import errors

    context: dict[str, Any] = {"messageId": getattr(message, "id", None),
                               "dequeueCount": getattr(message, "dequeue_count", None)}
    try:
        target = parse_message(message.get_body())
    except RejectedMessage as error:
        records.emit("rotation.queue_message_rejected", logging.WARNING, reason=str(error), **context)
        return
    try:
        result = runtime.service.advance_target(target, trigger="queue")
    except errors.UnknownTarget:
        records.emit("rotation.queue_message_rejected", logging.WARNING, reason="unknown target",
                     target=records.clip(target), **context)
        return
    except Exception as error:
        records.emit("rotation.queue_retry", logging.WARNING, target=records.clip(target),
                     error=f"{type(error).__name__}: {records.clip(str(error))}", **context)
        raise
    records.emit("rotation.queue_advanced", target=records.clip(target), result=to_json(result), **context)
