"""What every step receives: the ports, the policy, the target, and what this invocation already learned
(so a step does not re-read what the previous step of the same invocation just wrote)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from rotation.model import HistoryRecord, Policy, SecretValue, Slot, Target, TargetState
from rotation.outcomes import StepOutcome
from rotation.ports import AccountInfo, Clock, Ports, SecretStore, StoredSecret


@dataclass
class StepContext:
    ports: Ports
    policy: Policy
    clock: Clock
    target: Target
    trigger: str
    owner: str  # the lease owner this invocation writes
    requester: str = ""  # who asked (admin principal, event id) when a request drives this invocation
    # Key Vault as this invocation last read or wrote it
    pointer: Slot | None = None
    pointer_known: bool = False
    pointer_secret: StoredSecret | None = None
    active: StoredSecret | None = None  # P-active
    active_known: bool = False
    active_rewritten: bool = False  # this invocation wrote P-active
    values: dict[Slot, SecretValue] = field(default_factory=dict)  # slot values read or stored
    account: AccountInfo | None = None
    # ARM write budget held for the next regenerate (2 writes) or listKeys (1 write)
    regenerate_budget: bool = False
    list_keys_budget: bool = False
    # True once this invocation itself wrote a START_CYCLE/BEGIN_RETIRE intent: nobody can have done that
    # phase's regenerate yet (its generation tag is new), so the "already done?" read can be skipped.
    wrote_intent: bool = False
    kv_writes_held: int = 0  # Key Vault secret writes taken from the vault's budget and not yet spent
    deferred: bool = False  # stopped because an ARM or Key Vault write budget is exhausted
    retry_in: float = 0.0  # when deferred: seconds until the budget that stopped it has the tokens
    steps: list[str] = field(default_factory=list)
    started_cycle: str | None = None
    # This invocation's history rows, carried by its state writes and written to the history table with
    # the cycle's other rows when the cycle ends (rotation/history_carry.py); None: write each row at once.
    pending_history: list[HistoryRecord] | None = None
    carried: tuple[HistoryRecord, ...] = ()  # rows earlier invocations of the cycle left in the state
    carried_unchecked: bool = False  # left by an invocation that stopped between writes: maybe stored
    history_saved: int = 0  # how many of ``pending_history`` the last successful write carried or flushed
    state_write_failed: bool = False  # whether that write stored them is unknown

    def now(self) -> datetime:
        return self.clock()

    @property
    def secrets(self) -> SecretStore:
        """The vault of this target (its ``vault_url``, else the default one)."""
        return self.ports.secrets_for(self.target.vault_url)


@dataclass(frozen=True)
class StepResult:
    state: TargetState
    outcome: StepOutcome  # SUCCEEDED | WAITING | SKIPPED
    slot: Slot | None = None
    history: bool = True  # worth a history row (a no-op drift check or a probe retry is not)
    note: str = ""
