"""Lifecycle events to Event Grid (CONTRACTS.md "Lifecycle events"). Permission: "EventGrid Data Sender"
on the topic. Best effort: a failed publish is logged and never fails a rotation."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from azure.core.exceptions import AzureError
from azure.eventgrid import EventGridEvent, EventGridPublisherClient

from rotation.ports import LifecycleEvent, LifecycleSink

logger = logging.getLogger("rotation.lifecycle")


class EventGridLifecyclePublisher(LifecycleSink):
    def __init__(self, client: EventGridPublisherClient) -> None:
        self.client = client

    def publish(self, events: Iterable[LifecycleEvent]) -> None:
        batch = [
            EventGridEvent(
                subject=event.target,
                event_type=event.event_type,
                data=_data(event),
                data_version="1.0",
            )
            for event in events
        ]
        if not batch:
            return
        try:
            self.client.send(batch)
        except AzureError as error:
            status = getattr(error, "status_code", None)
            logger.warning("rotation.lifecycle_publish_failed %s", f"{type(error).__name__} HTTP {status}")


def _data(event: LifecycleEvent) -> dict[str, str | None]:
    data: dict[str, str | None] = {
        "target": event.target,
        "accountName": event.account_name,
        "cycleId": event.cycle_id,
        "slot": event.slot,
        "activeSlot": event.active_slot,
    }
    if event.reason:
        data["reason"] = event.reason
    return data
