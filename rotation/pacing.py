"""Pacing the fan-out: when each due target's queue message should become visible so that the whole wave
stays inside the write budgets — ARM writes per subscription, Key Vault secret writes per vault — instead
of every instance hitting the buckets at once and deferring most of the work. Pure arithmetic; the shared
buckets (``WriteRateLimiter``) still enforce the budgets, pacing only keeps deferrals rare."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from rotation.decision import (
    KEY_VAULT_WRITES_PER_INVOCATION,
    LIST_KEYS_ACTIONS,
    SPENDS_REGENERATE_BUDGET,
    WRITES_PER_REGENERATE,
    Action,
)
from rotation.model import Target


@dataclass(frozen=True)
class Budget:
    per_second: float
    burst: float


def arm_writes(action: Action) -> int:
    if action in SPENDS_REGENERATE_BUDGET:
        return WRITES_PER_REGENERATE
    return 1 if action in LIST_KEYS_ACTIONS else 0


def pace(
    work: Sequence[tuple[Target, Action]],
    arm: Budget,
    vault: Budget,
    vault_key: Callable[[str], str],
) -> list[float]:
    """Seconds to delay each item: the i-th item of a subscription waits until that subscription's bucket
    has refilled what the items before it spent beyond the burst; likewise per vault; the later wins."""
    arm_spent: dict[str, float] = {}
    vault_spent: dict[str, float] = {}
    delays: list[float] = []
    for target, action in work:
        sub = target.subscription_id.lower()
        key = vault_key(target.vault_url)
        arm_spent[sub] = arm_spent.get(sub, 0.0) + arm_writes(action)
        vault_spent[key] = vault_spent.get(key, 0.0) + KEY_VAULT_WRITES_PER_INVOCATION.get(action, 0)
        delays.append(
            max(
                0.0,
                (arm_spent[sub] - arm.burst) / arm.per_second,
                (vault_spent[key] - vault.burst) / vault.per_second,
            )
        )
    return delays


def by_second(later: Iterable[tuple[str, float]]) -> dict[int, list[str]]:
    """Paced targets (resource id, delay) by the whole second their queue message becomes visible: a
    message's visibility delay is whole seconds, so the targets of one second come back together (one
    ``WorkScheduler.schedule_many``), none before its paced time."""
    seconds: dict[int, list[str]] = {}
    for resource_id, delay in later:
        seconds.setdefault(math.ceil(delay), []).append(resource_id)
    return seconds
