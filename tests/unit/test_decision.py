"""The pure decision function, table-driven."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rotation.decision import Action, decide, judge_request
from rotation.model import CycleRequest, Phase, Policy, Slot, Target, TargetState
from rotation.outcomes import RequestStatus
from testkit.fakes import T0, rid

TARGET = Target(rid("acc"), "acc", timedelta(days=30), timedelta(hours=24))
POLICY = Policy()
H = timedelta(hours=1)


def idle(**changes: object) -> TargetState:
    base = TargetState(TARGET.resource_id, Phase.IDLE, Slot.KEY1, due_at=T0 + 10 * H, drift_checked_at=T0)
    return base.with_changes(**changes)


CASES = [
    ("no state → adopt", None, Action.ADOPT),
    ("adoption interrupted → resume", TargetState(TARGET.resource_id, Phase.ADOPTING), Action.ADOPT),
    ("idle, not due → wait until due/drift", idle(), Action.WAIT),
    ("idle, due → start", idle(due_at=T0), Action.START_CYCLE),
    ("idle, due, in backoff → wait", idle(due_at=T0 - H, next_attempt_at=T0 + H), Action.WAIT),
    ("idle, drift check due", idle(drift_checked_at=T0 - 7 * H), Action.CHECK_DRIFT),
    ("lease held by another → busy", idle(due_at=T0, lease_owner="x", lease_expires_at=T0 + H), Action.BUSY),
    ("expired lease → take over", idle(due_at=T0, lease_owner="x", lease_expires_at=T0), Action.START_CYCLE),
    ("regenerating → regenerate", idle(phase=Phase.REGENERATING, cycle_id="c"), Action.REGENERATE_NEW),
    ("verifying → verify", idle(phase=Phase.VERIFYING, cycle_id="c"), Action.VERIFY_AND_SWAP),
    ("verify retry not yet due", idle(phase=Phase.VERIFYING, next_attempt_at=T0 + H), Action.WAIT),
    ("draining → wait", idle(phase=Phase.DRAINING, drain_until=T0 + H), Action.WAIT),
    ("drain over → begin retire", idle(phase=Phase.DRAINING, drain_until=T0), Action.BEGIN_RETIRE),
    ("retiring → retire", idle(phase=Phase.RETIRING, cycle_id="c"), Action.RETIRE_OLD),
    ("keyless, re-check not due", idle(phase=Phase.KEYLESS, next_attempt_at=T0 + H), Action.WAIT),
    ("keyless, re-check due", idle(phase=Phase.KEYLESS, next_attempt_at=T0), Action.RECHECK_KEYLESS),
]


@pytest.mark.parametrize(("state", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_decide(state: TargetState | None, expected: Action) -> None:
    assert decide(state, TARGET, T0, POLICY, owner="me").action is expected


def test_wait_says_until_when() -> None:
    decision = decide(idle(phase=Phase.DRAINING, drain_until=T0 + H), TARGET, T0, POLICY, owner="me")
    assert decision.not_before == T0 + H


def test_own_lease_is_not_busy() -> None:
    state = idle(due_at=T0, lease_owner="me", lease_expires_at=T0 + H)
    assert decide(state, TARGET, T0, POLICY, owner="me").action is Action.START_CYCLE


REQUEST = CycleRequest("admin")
FORCED = CycleRequest("admin", force=True)
EMERGENCY = CycleRequest("admin", emergency=True)
REQUEST_CASES = [
    ("idle → started", idle(), REQUEST, RequestStatus.STARTED),
    ("not adopted → started", None, REQUEST, RequestStatus.STARTED),
    (
        "in progress → in_progress",
        idle(phase=Phase.VERIFYING, cycle_id="c"),
        FORCED,
        RequestStatus.IN_PROGRESS,
    ),
    ("recent cycle → refused", idle(last_rotated_at=T0 - H), REQUEST, RequestStatus.REFUSED),
    ("recent cycle, forced → started", idle(last_rotated_at=T0 - H), FORCED, RequestStatus.STARTED),
    ("backoff → refused", idle(next_attempt_at=T0 + H, last_error="x"), REQUEST, RequestStatus.REFUSED),
    ("backoff, emergency → started", idle(next_attempt_at=T0 + H), EMERGENCY, RequestStatus.STARTED),
    ("keyless → refused", idle(phase=Phase.KEYLESS), FORCED, RequestStatus.REFUSED),
    (
        "draining, emergency → drain shortened",
        idle(phase=Phase.DRAINING, swapped_at=T0 - H, drain_until=T0 + 23 * H),
        EMERGENCY,
        RequestStatus.DRAIN_SHORTENED,
    ),
    (
        "draining, forced → in progress",
        idle(phase=Phase.DRAINING, swapped_at=T0 - H, drain_until=T0 + 23 * H),
        FORCED,
        RequestStatus.IN_PROGRESS,
    ),
]


@pytest.mark.parametrize(
    ("state", "request_", "expected"), [c[1:] for c in REQUEST_CASES], ids=[c[0] for c in REQUEST_CASES]
)
def test_judge_request(state: TargetState | None, request_: CycleRequest, expected: RequestStatus) -> None:
    assert judge_request(state, TARGET, T0, POLICY, "me", request_).status is expected


def test_emergency_drain_is_measured_from_the_swap() -> None:
    state = idle(phase=Phase.DRAINING, swapped_at=T0 - H, drain_until=T0 + 23 * H)
    verdict = judge_request(state, TARGET, T0, Policy(emergency_drain_time=2 * H), "me", EMERGENCY)
    assert verdict.new_drain_until == T0 + H


def test_backoff_grows_and_is_capped() -> None:
    assert [POLICY.backoff(n) for n in (1, 2, 3)] == [timedelta(minutes=m) for m in (1, 2, 4)]
    assert POLICY.backoff(50) == POLICY.backoff_max
