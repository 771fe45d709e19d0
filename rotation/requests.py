"""Requests to rotate now — an admin, the CLI, a Key Vault expiry event — judged by the pure
``rotation.decision.judge_request`` and carried out by the runner; never a second cycle."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from rotation.audit import error_text, log_transition, logger
from rotation.decision import judge_request
from rotation.errors import RotationError, StateConflict
from rotation.model import CycleRequest, HistoryRecord, Target, TargetState, VersionedState, state_of
from rotation.outcomes import EventDecision, RequestStatus, StepOutcome, TargetOutcome
from rotation.views import RequestOutcome, SecretEventOutcome

if TYPE_CHECKING:
    from rotation.service import RotationService


def request_rotation(
service: RotationService,
    target: str | Target,
    trigger: str = "admin",
    requester: str = "",
    reason: str = "",
    force: bool = False,
    emergency: bool = False,
) -> RequestOutcome:
    """Start a cycle now (see ``rotation.decision.judge_request`` for when it is refused).

    Raises UnknownTarget. Never starts a second cycle while one is in progress.
    """
    resolved = service.resolve(target)
    request = CycleRequest(
        trigger=trigger,
        requester=requester,
        reason=reason or "manual request",
        force=force or emergency,
        emergency=emergency,
    )
    owner = uuid.uuid4().hex
    for _ in range(3):
        current = service.ports.states.get(resolved.state_key)
        now = service.clock()
        verdict = judge_request(state_of(current), resolved, now, service.policy, owner, request)
        if verdict.status is RequestStatus.STARTED:
            result = service.runner.advance(resolved, trigger, loaded=current, request=request, owner=owner)
            if result.outcome is TargetOutcome.BUSY:
                continue  # lost a race: judge again against the winner's state
            if result.started_cycle is None:
                return _outcome(service,
                    resolved,
                    RequestStatus.REFUSED,
                    result.error or "the cycle could not be started",
                    None,
                )
            failed = result.outcome is TargetOutcome.FAILED
            message = f"cycle started; {result.error}" if failed else "cycle started"
            return _outcome(service, resolved, RequestStatus.STARTED, message, result.started_cycle)
        if verdict.status is RequestStatus.DRAIN_SHORTENED and current is not None:
            assert verdict.new_drain_until is not None
            shortened = current.state.with_changes(
                drain_until=verdict.new_drain_until,
                emergency=True,
                drain_seconds=service.policy.emergency_drain_time.total_seconds(),
            )
            try:
                written = service.ports.states.replace(resolved.state_key, shortened, current.etag)
            except StateConflict:
                continue
            _request_history(service, resolved, written.state, request, verdict.status, verdict.message)
            log_transition(
                target=resolved.resource_id,
                cycle=shortened.cycle_id,
                step="request",
                slot=None,
                trigger=trigger,
                outcome=StepOutcome.SUCCEEDED,
            )
            service.runner.advance(resolved, trigger, loaded=written, owner=owner)
            return _outcome(service,
                resolved, RequestStatus.DRAIN_SHORTENED, verdict.message, shortened.cycle_id
            )
        _request_history(service, resolved, state_of(current), request, verdict.status, verdict.message)
        log_transition(
            target=resolved.resource_id,
            cycle=_cycle_of(current),
            step="request",
            slot=None,
            trigger=trigger,
            outcome=StepOutcome.SKIPPED,
            error=None,
        )
        return _outcome(service, resolved, verdict.status, verdict.message, _cycle_of(current), current)
    return _outcome(service, resolved, RequestStatus.IN_PROGRESS, "other invocations are working on it", None)

def handle_secret_near_expiry(
service: RotationService,
    vault_url: str,
    secret_name: str,
    version: str | None,
    event_type: str = "Microsoft.KeyVault.SecretNearExpiry",
    requester: str = "eventgrid",
) -> SecretEventOutcome:
    """Event Grid: request exactly one cycle for the current version of a managed ``P-active``;
    anything else is ignored with a reason code. Never raises for stale or unknown events (Event Grid
    delivers at least once, out of order); raises only what a retry could fix (transient Azure errors).
    """
    target = service.find_target_for_secret(vault_url, secret_name)
    if target is None:
        return SecretEventOutcome(
            EventDecision.UNMANAGED_SECRET, "no target owns this secret in this vault"
        )
    if secret_name.strip().lower() != target.active_secret.lower():
        # Only P-active carries an expiry (DESIGN §3); an expiry set by hand elsewhere is no reason.
        return SecretEventOutcome(
            EventDecision.NOT_ROTATED_BY_EVENTS,
            f"only {target.active_secret} is rotated by expiry events",
            target.resource_id,
        )
    # Reading the latest version is the only way to tell a replaced version from the current one.
    current = service.ports.secrets_for(target.vault_url).get_secret(target.active_secret)
    if current is None:
        return SecretEventOutcome(
            EventDecision.UNMANAGED_SECRET, "the secret no longer exists", target.resource_id
        )
    if version and current.version != version:
        return SecretEventOutcome(
            EventDecision.STALE_VERSION,
            "the secret has a newer version; this event is about a replaced one",
            target.resource_id,
            current.version,
        )
    outcome = service.request_rotation(
        target,
        trigger="event",
        requester=requester,
        reason=f"{event_type.rsplit('.', 1)[-1]} {secret_name}/{version or 'latest'}",
    )
    if outcome.accepted:
        reason = EventDecision.REQUESTED
    elif outcome.status is RequestStatus.IN_PROGRESS:
        reason = EventDecision.CYCLE_IN_PROGRESS
    else:
        reason = EventDecision.REFUSED
    return SecretEventOutcome(reason, outcome.message, target.resource_id, current.version, outcome)


def _outcome(
service: RotationService,
    target: Target,
    status: RequestStatus,
    message: str,
    cycle: str | None,
    current: VersionedState | None = None,
) -> RequestOutcome:
    state = state_of(current) if current is not None else state_of(service.ports.states.get(target.state_key))
    return RequestOutcome(target.resource_id, status, message, cycle, service.status_of(target, state))

def _request_history(
service: RotationService,
    target: Target,
    state: TargetState | None,
    request: CycleRequest,
    outcome: RequestStatus,
    message: str,
) -> None:
    """A request's row (step ``request``): its outcome is the request's status."""
    record = HistoryRecord(
        target=target.resource_id,
        at=service.clock(),
        step="request",
        outcome=outcome.value,
        trigger=request.trigger,
        requester=request.requester,
        reason=request.reason,
        cycle=state.cycle_id if state else None,
        error=message if outcome is not RequestStatus.DRAIN_SHORTENED else None,
        emergency=request.emergency,
    )
    try:
        service.ports.history.append(target.state_key, record)
    except RotationError as exc:
        logger.warning("rotation.history_write_failed %s", error_text(exc))


def _cycle_of(current: VersionedState | None) -> str | None:
    return current.state.cycle_id if current is not None else None
