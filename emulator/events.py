"""Key Vault's SecretNearExpiry / SecretExpired events, judged by the emulator's clock.

Like Key Vault, only the current (latest) version of a secret is watched; each (version, event type) is
emitted once. Events go to ``GET /_emulator/events``, to an in-process callback, and to a webhook as Event
Grid delivers them: a JSON array per POST, retried with exponential backoff until a 2xx (at least once).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import heapq
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
        # When each watched secret's next event falls due: (due, secret key). Evaluating pops only what is
        # due, so the once-a-second tick costs nothing per secret; every secret write pushes its secret.
        self._due: list[tuple[float, str]] = []
        self._emitted: set[str] = set()
        self._indexed_state: object = None

    def watch(self, name: str) -> None:
        """A secret changed (new version, new attributes, recovered): schedule its latest version."""
        versions = self.emulator.state.secrets.get(name.lower())
        if versions and versions[-1].expires is not None:
            expires = versions[-1].expires
            for when in (expires - NEAR_EXPIRY_WINDOW_SECONDS, expires):
                heapq.heappush(self._due, (when, name.lower()))

    def _ensure_index(self) -> None:
        """(Re)build the schedule from every secret: at start, after a state file was loaded, after a
        reset (which empties the emitted markers) — the only scans of every secret."""
        state = self.emulator.state
        if self._indexed_state is state and len(self._emitted) == len(state.emitted_events):
            return
        self._indexed_state = state
        self._emitted = set(state.emitted_events)
        self._due = []
        for name in state.secrets:
            self.watch(name)

    def evaluate(self) -> None:
        self._ensure_index()
        state = self.emulator.state
        now = self.emulator.now()
        new_events: list[dict[str, Any]] = []
        while self._due and self._due[0][0] <= now:
            _, name = heapq.heappop(self._due)
            versions = state.secrets.get(name)
            latest = versions[-1] if versions else None
            if latest is None or latest.expires is None:
                continue  # deleted, or no longer expiring: nothing to say
            expires = latest.expires
            due = ((NEAR_EXPIRY, expires - NEAR_EXPIRY_WINDOW_SECONDS), (EXPIRED, expires))
            for event_type, when in due:
                marker = f"{event_type}|{latest.version}"
                if now >= when and marker not in self._emitted:
                    self._emitted.add(marker)
                    state.emitted_events.append(marker)
                    new_events.append(
                        self._event(event_type, latest.name, latest.version, latest.not_before, expires, now)
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
