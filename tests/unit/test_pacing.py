"""Fan-out pacing: each due target's delay keeps a wave inside the ARM budget of its subscription and the
Key Vault budget of its vault."""

from __future__ import annotations

import pytest

from rotation.decision import Action
from rotation.model import Target
from rotation.pacing import Budget, pace


def target(sub: str, name: str, vault: str = "") -> Target:
    provider = "providers/Microsoft.CognitiveServices/accounts"
    return Target(f"/subscriptions/{sub}/resourceGroups/g/{provider}/{name}", name, vault_url=vault)


def test_the_vault_budget_paces_adoption_beyond_its_burst() -> None:
    work = [(target("s1", f"a{i}"), Action.ADOPT) for i in range(10)]
    delays = pace(work, Budget(100, 100), Budget(per_second=4, burst=8), lambda url: url or "default")
    # 4 secret writes each: two fit the burst of 8, then one per second
    assert delays == pytest.approx([0, 0, 1, 2, 3, 4, 5, 6, 7, 8])


def test_subscriptions_and_vaults_are_paced_separately_and_the_later_delay_wins() -> None:
    work = [
        (target("s1", "a"), Action.START_CYCLE),
        (target("s1", "b"), Action.START_CYCLE),
        (target("s2", "c"), Action.START_CYCLE),
        (target("s3", "d", vault="https://kv2/"), Action.START_CYCLE),  # its own subscription and vault
    ]
    arm, vault = Budget(per_second=0.5, burst=1), Budget(per_second=3, burst=3)
    delays = pace(work, arm, vault, lambda url: url or "kv1")
    # ARM: 1 write each (regenerateKey), a burst of 1 per subscription; Key Vault: 3 writes each, a burst of 3
    # per vault. b: its subscription's second write waits 2 s, its vault 1 s — the later wins;
    # c: its subscription has room, its vault (the third 3-write item there) waits 2 s
    assert delays == pytest.approx([0, 2, 2, 0])
