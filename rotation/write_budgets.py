"""Taking the write tokens a step will spend (ARM per subscription and identity, Key Vault per vault) and
giving back what an invocation took but did not spend.

A step may need tokens from both budgets. They live in different buckets (different Table entities), so
they cannot be taken in one atomic write; instead what was taken is returned when the other budget
refuses, and whatever is still held when the invocation ends (a deferral, a failure, a step that waits) is
returned too, so no token is ever lost to work that did not happen.
"""

from __future__ import annotations

from rotation.decision import (
    KEY_VAULT_WRITES_SPENT,
    KEY_VAULT_WRITES_TAKEN,
    LIST_KEYS_ACTIONS,
    SPENDS_REGENERATE_BUDGET,
    WRITES_PER_REGENERATE,
    Action,
)
from rotation.steps.context import StepContext

BUDGET_EXHAUSTED = "ARM write budget exhausted for the subscription"
VAULT_BUDGET_EXHAUSTED = "Key Vault secret-write budget exhausted for the vault"


class WritesDeferred(Exception):
    """A step found the vault's budget empty right before its writes, having written nothing: the runner
    reschedules the target as it does a deferral before a step (not a failure: no backoff, no error)."""


def _take_vault(ctx: StepContext, writes: int) -> int | None:
    """Hold ``writes`` secret writes of the vault's budget: how many were taken now (0 when already held),
    or None when the vault refused (``ctx.retry_in`` set, nothing taken)."""
    needed = writes - ctx.kv_writes_held
    if needed <= 0:
        return 0
    vault = ctx.ports.vault_key(ctx.target.vault_url)
    if not ctx.ports.vault_limiter.try_acquire(vault, needed):
        ctx.retry_in = ctx.ports.vault_limiter.wait_seconds(vault, needed)
        return None
    ctx.kv_writes_held += needed
    return needed


def take_vault_writes(ctx: StepContext, writes: int) -> None:
    """Take ``writes`` secret writes from the vault's budget now, right before a step's writes, or raise
    ``WritesDeferred``. For steps whose reads would otherwise sit between the token and the write (Key
    Vault counts the write when it arrives: docs/ENGINE.md "Budgets across instances")."""
    if _take_vault(ctx, writes) is None:
        raise WritesDeferred(VAULT_BUDGET_EXHAUSTED)


def take_budget(ctx: StepContext, action: Action) -> str | None:
    """Take the Key Vault and ARM write tokens ``action`` will spend; or say which budget has none left
    (and set ``ctx.retry_in``), having taken nothing more. The vault goes first: its budget (30 writes/s)
    is the scarcer one."""
    ports = ctx.ports
    subscription = ctx.target.subscription_id
    taken_vault = _take_vault(ctx, KEY_VAULT_WRITES_TAKEN.get(action, 0))
    if taken_vault is None:
        return VAULT_BUDGET_EXHAUSTED
    arm_writes = 0
    if action in SPENDS_REGENERATE_BUDGET and not ctx.regenerate_budget:
        arm_writes += WRITES_PER_REGENERATE
    if action in LIST_KEYS_ACTIONS and not ctx.list_keys_budget:
        arm_writes += 1
    if arm_writes and not ports.limiter.try_acquire(subscription, arm_writes):
        ctx.retry_in = ports.limiter.wait_seconds(subscription, arm_writes)
        if taken_vault:  # not spent: the step will not run now
            ports.vault_limiter.release(ports.vault_key(ctx.target.vault_url), taken_vault)
            ctx.kv_writes_held -= taken_vault
        return BUDGET_EXHAUSTED
    if action in SPENDS_REGENERATE_BUDGET:
        ctx.regenerate_budget = True
    if action in LIST_KEYS_ACTIONS:
        ctx.list_keys_budget = True  # adoption: shared by its intent write and the ADOPT step
    return None


def return_unspent(ctx: StepContext) -> None:
    """The invocation is over: give back every token it holds for writes it will not make."""
    ports = ctx.ports
    if ctx.kv_writes_held > 0:
        ports.vault_limiter.release(ports.vault_key(ctx.target.vault_url), ctx.kv_writes_held)
        ctx.kv_writes_held = 0
    arm_writes = (WRITES_PER_REGENERATE if ctx.regenerate_budget else 0) + (1 if ctx.list_keys_budget else 0)
    if arm_writes:
        ports.limiter.release(ctx.target.subscription_id, arm_writes)
        ctx.regenerate_budget = ctx.list_keys_budget = False


def mark_spent(ctx: StepContext, action: Action, wrote: bool = True) -> None:
    """``action``'s step ran (to success, or to an error after its side effects may have happened): what it
    writes counts as spent, never returned (returning a token a write used would let the next one 429).
    ``wrote=False``: the step stopped to wait before writing (a verification not accepted yet), so its
    Key Vault writes are still held (and returned at the end of the invocation)."""
    if action in LIST_KEYS_ACTIONS:
        ctx.list_keys_budget = False
    if wrote:
        ctx.kv_writes_held = max(0, ctx.kv_writes_held - KEY_VAULT_WRITES_SPENT.get(action, 0))
