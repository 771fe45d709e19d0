"""An admin releases a drain held by consumers (docs/ENGINE.md "Consumers"): loudly, with a reason."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from rotation.audit import logger
from rotation.decision import has_signal_consumers
from rotation.errors import StateConflict
from rotation.model import CycleRequest, Phase, Target, state_of
from rotation.outcomes import RequestStatus
from rotation.requests import _cycle_of, _outcome, _request_history
from rotation.views import RequestOutcome

if TYPE_CHECKING:
    from rotation.service import RotationService


def release_drain(
    service: RotationService, target: str | Target, requester: str, reason: str, trigger: str = "admin"
) -> RequestOutcome:
    """Lift the consumer gate of a drain (docs/ENGINE.md "Consumers"): the old key is then retired once the
    drain's bound is over, whatever the consumers report. Needs a reason (it goes into history, loudly).
    Raises UnknownTarget; refused when no drain of the target is waiting for consumers."""
    resolved = service.resolve(target)
    if not reason.strip():
        return _outcome(
            service,
            resolved,
            RequestStatus.REFUSED,
            "a release needs a reason (--reason): it goes into history",
            None,
        )
    for _ in range(3):
        current = service.ports.states.get(resolved.state_key)
        state = state_of(current)
        if (
            current is None
            or state is None
            or state.phase is not Phase.DRAINING
            or not has_signal_consumers(state, resolved.consumers)
        ):
            phase = state.phase.value if state else "unadopted"
            return _outcome(
                service,
                resolved,
                RequestStatus.REFUSED,
                f"nothing to release: no drain of this target is waiting for consumers (phase {phase})",
                _cycle_of(current),
                current,
            )
        released = state.with_changes(
            drain_released_by=requester or "unknown",
            drain_release_reason=reason,
            drain_ended_by="released",
            consumers_check_at=None,
        )
        try:
            written = service.ports.states.replace(resolved.state_key, released, current.etag)
        except StateConflict:
            continue
        request = CycleRequest(trigger=trigger, requester=requester, reason=reason)
        waiting = state.consumers_waiting or "none seen yet"
        message = f"drain released; consumers not seen on the new key: {waiting}"
        _request_history(service, resolved, written.state, request, RequestStatus.RELEASED, message)
        logger.warning(
            "rotation.drain_released %s: %s (by %s: %s)", resolved.resource_id, waiting, requester, reason
        )
        service.runner.advance(resolved, trigger, loaded=written, owner=uuid.uuid4().hex)
        return _outcome(service, resolved, RequestStatus.RELEASED, message, state.cycle_id)
    return _outcome(service, resolved, RequestStatus.IN_PROGRESS, "the state kept changing; try again", None)
