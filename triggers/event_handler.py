"""Key Vault near-expiry / expired events → a cycle request for the target that owns the secret.

Event Grid delivers at least once, out of order, and retries whatever raises (exponential backoff for up
to 24 h, then the subscription's dead-letter container). So:
- anything this app should not act on — other event types, malformed payloads, other vaults, unmanaged
  secrets, versions already replaced, duplicates of a cycle already running — is logged as
  `rotation.event_ignored {json}` and returns normally (retrying would never change the answer);
- a valid event that fails on a transient Azure error (throttling, 5xx, timeout) or a lost lease raises,
  so Event Grid's retry policy and dead-letter keep it until Azure recovers;
- a valid event that fails for a permanent reason (access denied, keyless account, ...) is logged as
  `rotation.event_failed` and not retried: the timer's sweep and the admin API surface that target's
  failure, and retrying for 24 h would only repeat it.
"""

from __future__ import annotations

import logging
from typing import Any

from rotation.views import to_json
from triggers import records
from triggers.key_vault_events import IgnoredEvent, SecretEvent, parse_event
from triggers.runtime import Runtime


def handle_key_vault_event(event: Any, runtime: Runtime) -> None:
    parsed = parse_event(event)
    if isinstance(parsed, IgnoredEvent):
        _ignored(parsed.reason, parsed.detail, event_id=parsed.event_id, event_type=parsed.event_type)
        return
    _request_cycle(parsed, runtime)


def _request_cycle(event: SecretEvent, runtime: Runtime) -> None:
    from rotation import errors

    context: dict[str, Any] = {
        "eventId": records.clip(event.event_id), "eventType": records.clip(event.event_type),
        "secret": event.secret_name,
        "version": event.version, "vault": event.vault_url,
    }
    try:
        _act_on(event, runtime.service, context)
    except (errors.TransientAzureError, errors.LeaseLost) as error:
        records.emit("rotation.event_retry", logging.WARNING,
                     error=f"{type(error).__name__}: {records.clip(str(error))}", **context)
        raise
    except errors.RotationError as error:
        records.emit("rotation.event_failed", logging.ERROR,
                     error=f"{type(error).__name__}: {records.clip(str(error))}", **context)


def _act_on(event: SecretEvent, service: Any, context: dict[str, Any]) -> None:
    from rotation import errors

    try:
        outcome = service.handle_secret_near_expiry(
            event.vault_url, event.secret_name, event.version, event_type=event.event_type,
            requester=f"eventgrid:{records.clip(event.event_id, 100)}",
        )
    except errors.UnknownTarget:  # the configuration changed between lookup and request
        _ignored("unmanaged_secret", "the owning target is no longer configured", **context)
        return
    if outcome.target:
        context["target"] = outcome.target
    if outcome.current_version and outcome.reason == "stale_version":
        context["currentVersion"] = outcome.current_version
    if not outcome.requested:
        # Unmanaged, stale, duplicate (cycle running) or refused (a cycle just completed, backoff,
        # keyless): never a second cycle, and a retry of the event would get the same answer.
        _ignored(outcome.reason, records.clip(outcome.detail), **context)
        return
    result = to_json(outcome.request)
    records.emit("rotation.event_accepted", status=result.get("status"), cycle=result.get("cycleId"),
                 **context)


def _ignored(reason: str, detail: str, **fields: Any) -> None:
    # Every echoed field is clipped: an event id or type can be as large as Event Grid lets through.
    clipped = {name: records.clip(v) if isinstance(v, str) else v for name, v in fields.items()}
    records.emit("rotation.event_ignored", reason=reason, detail=records.clip(detail), **clipped)
