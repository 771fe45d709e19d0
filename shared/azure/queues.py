"""The fan-out queue as a scheduler (azure-storage-queue): a target whose write budget is spent is put back
as a message that becomes visible when the budget has the tokens again (``visibility_timeout``), so work
the budgets allow never waits for the next timer tick — and nothing sleeps (I6). The queue trigger
(``rotate_from_queue``) advances it. Permission: "Storage Queue Data Message Sender"."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence

from azure.core.exceptions import AzureError
from azure.storage.queue import QueueClient

from rotation.audit import logger
from rotation.ports import WorkScheduler
from shared.fanout import fanout_message, target_groups

MAX_VISIBILITY_SECONDS = 7 * 24 * 3600  # Queue Storage's limit for a message's initial invisibility


# A message this process sent that is still invisible and due no later than this many seconds after the
# time asked for already brings the target back: another one would only run it twice (a sweep that defers a
# target again before its message is due asked for the same thing).
ALREADY_SCHEDULED_SLACK = 1.0


class QueueWorkScheduler(WorkScheduler):
    def __init__(self, client: QueueClient, clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client  # built with TextBase64EncodePolicy: the Functions queue trigger's encoding
        self.clock = clock
        self._pending: dict[str, float] = {}  # target -> when the message this process sent becomes visible
        self._lock = threading.Lock()

    def schedule(self, resource_id: str, delay_seconds: float) -> None:
        self.schedule_many((resource_id,), delay_seconds)

    def schedule_many(self, resource_ids: Sequence[str], delay_seconds: float) -> None:
        """One message per MAX_TARGETS_PER_MESSAGE targets (``shared.fanout``), leaving out those this
        process already brings back by then."""
        delay = min(MAX_VISIBILITY_SECONDS, max(0, math.ceil(delay_seconds)))
        with self._lock:
            now = self.clock()
            due: list[str] = []
            for resource_id in dict.fromkeys(resource_ids):
                pending = self._pending.get(resource_id)
                if pending is not None and now < pending <= now + delay + ALREADY_SCHEDULED_SLACK:
                    continue
                self._pending[resource_id] = now + delay
                due.append(resource_id)
        sent = 0
        try:
            for group in target_groups(due):
                self.client.send_message(fanout_message(*group), visibility_timeout=delay)
                sent += len(group)
        except AzureError as error:  # the next sweep takes the targets anyway
            with self._lock:
                for resource_id in due[sent:]:
                    self._pending.pop(resource_id, None)
            logger.warning(
                "rotation.schedule_failed %s: %s", ", ".join(due[sent:]), type(error).__name__
            )
