"""Key Vault's SecretNearExpiry / SecretExpired events, judged by the emulator's clock.

Like Key Vault, only the current (latest) version of a secret is watched; each (version, event type) is
emitted once. Events go to ``GET /_emulator/events``, to an in-process callback, and to a webhook as Event
Grid delivers them: a JSON array per POST, retried with exponential backoff until a 2xx (at least once).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from typing import Any

import httpx

from emulator.core import Emulator

NEAR_EXPIRY = "Microsoft.KeyVault.SecretNearExpiry"
EXPIRED = "Microsoft.KeyVault.SecretExpired"
NEAR_EXPIRY_WINDOW_SECONDS = 30 * 86400
MAX_DELIVERY_ATTEMPTS = 12
FIRST_BACKOFF_SECONDS = 0.2
MAX_BACKOFF_SECONDS = 10.0

logger = logging.getLogger("emulator.events")


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class KeyVaultEvents:
    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.outbox: asyncio.Queue[dict[str, Any]] | None = None
        self.delivered = 0
        self.failed_attempts = 0

    def evaluate(self) -> None:
        state = self.emulator.state
        now = self.emulator.now()
        emitted = set(state.emitted_events)
        new_events: list[dict[str, Any]] = []
        for versions in state.secrets.values():
            latest = versions[-1]
            if latest.expires is None:
                continue
            due = ((NEAR_EXPIRY, latest.expires - NEAR_EXPIRY_WINDOW_SECONDS), (EXPIRED, latest.expires))
            for event_type, when in due:
                marker = f"{event_type}|{latest.version}"
                if now >= when and marker not in emitted:
                    emitted.add(marker)
                    state.emitted_events.append(marker)
                    new_events.append(
                        self._event(
                            event_type, latest.name, latest.version, latest.not_before, latest.expires, now
                        )
                    )
        if not new_events:
            return
        state.kv_events.extend(new_events)
        self.emulator.persist()
        for event in new_events:
            self._dispatch(event)

    def _event(
        self, event_type: str, name: str, version: str, nbf: int | None, exp: int, now: float
    ) -> dict[str, Any]:
        return {
            "id": str(uuid.uuid4()),
            "topic": self.emulator.vault_resource_id,
            "subject": name,
            "eventType": event_type,
            "eventTime": _iso(now),
            "data": {
                "Id": f"{self.emulator.vault_url}/secrets/{name}/{version}",
                "VaultName": self.emulator.config.vault_name,
                "ObjectType": "Secret",
                "ObjectName": name,
                "Version": version,
                "NBF": nbf,
                "EXP": exp,
            },
            "dataVersion": "1",
            "metadataVersion": "1",
        }

    def _dispatch(self, event: dict[str, Any]) -> None:
        if self.emulator.on_event is not None:
            try:
                self.emulator.on_event(event)
            except Exception:  # a broken test callback must not stop the emulator
                logger.exception("event callback failed for %s", event["eventType"])
        if self.emulator.config.event_webhook and self.outbox is not None:
            self.outbox.put_nowait(event)

    async def tick_forever(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.evaluate()

    async def deliver_forever(self) -> None:
        """Post queued events to the webhook one at a time, in order, retrying each until accepted."""
        assert self.outbox is not None
        url = self.emulator.config.event_webhook
        assert url is not None
        async with httpx.AsyncClient(timeout=10.0) as client:
            while True:
                event = await self.outbox.get()
                await self._deliver(client, url, event)

    async def _deliver(self, client: httpx.AsyncClient, url: str, event: dict[str, Any]) -> None:
        backoff = FIRST_BACKOFF_SECONDS
        for attempt in range(1, MAX_DELIVERY_ATTEMPTS + 1):
            try:
                response = await client.post(url, json=[event], headers={"aeg-event-type": "Notification"})
                if 200 <= response.status_code < 300:
                    self.delivered += 1
                    return
                reason = f"HTTP {response.status_code}"
            except httpx.HTTPError as error:
                reason = type(error).__name__
            self.failed_attempts += 1
            logger.warning("webhook delivery of %s failed (attempt %d: %s)", event["id"], attempt, reason)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        logger.error("webhook delivery of %s dropped after %d attempts", event["id"], MAX_DELIVERY_ATTEMPTS)
