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

from triggers import records
from triggers.key_vault_events import IgnoredEvent, SecretEvent, parse_event
from triggers.runtime import Runtime
from triggers.serialize import to_json


def handle_key_vault_event(event: Any, runtime: Runtime) -> None:
    parsed = parse_event(event)
    if isinstance(parsed, IgnoredEvent):
        _ignored(parsed.reason, parsed.detail, event_id=parsed.event_id, event_type=parsed.event_type)
        return
    _request_cycle(parsed, runtime)


def _request_cycle(event: SecretEvent, runtime: Runtime) -> None:
    from rotation import errors

    context: dict[str, Any] = {
        "eventId": records.clip(event.event_id), "eventType": event.event_type, "secret": event.secret_name,
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

    target = service.find_target_for_secret(event.vault_url, event.secret_name)
    if target is None:
        _ignored("unmanaged_secret", "no configured target owns this secret in this vault", **context)
        return
    context["target"] = target.resource_id
    if event.secret_name.lower() != target.active_secret.lower():
        # Only `P-active` carries an expiry (DESIGN §3); an event for a slot or pointer secret means someone
        # set an expiry by hand — not a reason to rotate.
        _ignored("not_rotated_by_events", f"only {target.active_secret} is rotated by expiry events",
                 **context)
        return
    # The engine exposes its Key Vault port; reading the latest version is the only way to tell a replaced
    # version from the current one (Event Grid redelivers and reorders).
    current = service.ports.secrets.get_secret(target.active_secret)
    if current is None:
        _ignored("unmanaged_secret", "the secret no longer exists", **context)
        return
    if event.version is not None and current.version != event.version:
        _ignored("stale_version", "the secret has a newer version; this event is about a replaced one",
                 currentVersion=current.version, **context)
        return
    try:
        outcome = service.request_rotation(
            target, trigger="event", requester=f"eventgrid:{records.clip(event.event_id, 100)}",
            reason=f"{event.event_type.rsplit('.', 1)[-1]} {event.secret_name}/{event.version or 'latest'}",
        )
    except errors.CycleInProgress:
        _ignored("cycle_in_progress", "a cycle is already running for this target", **context)
        return
    except errors.UnknownTarget:
        _ignored("unmanaged_secret", "the owning target is no longer configured", **context)
        return
    result = to_json(outcome)
    if not outcome.accepted:
        # A running cycle (duplicate delivery) or a refusal (a cycle just completed, backoff, keyless):
        # never a second cycle, and retrying the event would get the same answer.
        why = "cycle_in_progress" if result.get("status") == "in_progress" else "refused"
        _ignored(why, records.clip(outcome.message), **context)
        return
    records.emit("rotation.event_accepted", status=result.get("status"), cycle=result.get("cycleId"),
                 **context)


def _ignored(reason: str, detail: str, **fields: Any) -> None:
    records.emit("rotation.event_ignored", reason=reason, detail=detail, **fields)
