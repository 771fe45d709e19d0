"""The fan-out queue as a scheduler (azure-storage-queue): a target whose write budget is spent is put back
as a message that becomes visible when the budget has the tokens again (``visibility_timeout``), so work
the budgets allow never waits for the next timer tick — and nothing sleeps (I6). The queue trigger
(``rotate_from_queue``) advances it. Permission: "Storage Queue Data Message Sender"."""

from __future__ import annotations

import math

from azure.core.exceptions import AzureError
from azure.storage.queue import QueueClient

from rotation.audit import logger
from rotation.ports import WorkScheduler
from shared.fanout import fanout_message

MAX_VISIBILITY_SECONDS = 7 * 24 * 3600  # Queue Storage's limit for a message's initial invisibility


class QueueWorkScheduler(WorkScheduler):
    def __init__(self, client: QueueClient) -> None:
        self.client = client  # built with TextBase64EncodePolicy: the Functions queue trigger's encoding

    def schedule(self, resource_id: str, delay_seconds: float) -> None:
        delay = min(MAX_VISIBILITY_SECONDS, max(0, math.ceil(delay_seconds)))
        try:
            self.client.send_message(fanout_message(resource_id), visibility_timeout=delay)
        except AzureError as error:  # the next sweep takes the target anyway
            logger.warning("rotation.schedule_failed %s: %s", resource_id, type(error).__name__)
