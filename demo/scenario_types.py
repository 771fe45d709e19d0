"""What a scenario run is configured with and what it records: the demo's names, its faults, its result.

Split from ``demo/scenario.py`` (the run itself) to keep each module short; ``demo.scenario`` re-exports
every name here, so code importing them from there is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from demo.consumers import ConsumerFleet
from demo.observed_ports import Observations
from demo.watchers import InvariantLog, PhaseChange
from rotation.model import HistoryRecord, Target

SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
RESOURCE_GROUP = "rg-demo"
PRIMARY = "ai-services"  # the seed material's names: ai-services-key1, -key2, -active-key
SECONDARY = "contoso-openai"
NEAR_EXPIRY_WINDOW = timedelta(days=30)  # Key Vault emits SecretNearExpiry 30 days before exp
EVENT_DELIVERY_SECONDS = 2.5  # the emulator evaluates events every second; the webhook then delivers them
# Issue 14: an App Service app reads the secondary's key only through a Key Vault reference to P-active
# (emulated: emulator/consumers.py); the engine refreshes it after each swap and retires the old key once
# the site shows the new version — its drain ends by acknowledgement, not after the 24 h reference bound.
SITE = "contoso-web"
SITE_SETTING = "OPENAI_API_KEY"


def site_id(name: str) -> str:
    return (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}"
            f"/providers/Microsoft.Web/sites/{name}")


def account_id(name: str) -> str:
    return (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}"
            f"/providers/Microsoft.CognitiveServices/accounts/{name}")


@dataclass(frozen=True)
class Fault:
    """One injected fault (emulator control API ``POST /faults``)."""

    label: str
    operation: str
    options: dict[str, Any]


DEFAULT_FAULTS = (
    Fault("429 throttled (Retry-After 1)", "arm.regenerate_key", {"status": 429, "retry_after": 1}),
    Fault("500 x2 (absorbed by the SDK's retries)", "arm.regenerate_key", {"status": 500, "count": 2}),
    Fault("timeout (no answer for 1 s)", "arm.regenerate_key", {"action": "timeout", "timeout_seconds": 1}),
    Fault("503 after the effect (regenerated twice)", "arm.regenerate_key", {"status": 503, "when": "after"}),
    Fault("dropped connection", "arm.regenerate_key", {"action": "drop"}),
)


@dataclass(frozen=True)
class ScenarioConfig:
    duration: float = 60.0  # seconds during which new cycles are triggered
    tick_interval: float = 0.5  # the sweep timer's period
    primary_period: str = "PT3S"
    primary_drain: str = "PT2S"
    secondary_period: str = "P7D"  # rotated by admin requests and near-expiry events, not by the timer
    # The secondary declares its consumers instead of a drain (issue 14): the App Service site (24 h bound,
    # acknowledged after the refresh) and the library/P-active readers: bound 1.4 s, which with its margin
    # (half the bound) is 2.1 s, covering TTL + max_stale (1.5 s).
    secondary_library_bound: str = "PT1.4S"
    secondary_action_every: float = 3.0  # alternate admin request / near-expiry event for the secondary
    consumers_per_kind: int = 4  # per target and integration kind (x 2 targets x 3 kinds)
    consumer_ttl: float = 0.5
    consumer_max_stale: float = 1.0  # must stay below drain - ttl
    consumer_pace: float = 0.05
    control_consumers: int = 0  # negative control: consumers whose cache outlives the drain
    control_ttl: float = 8.0
    crash_at: float | None = 2.0  # seconds into the run (then once at rest): crash after its next regenerate
    faults: tuple[Fault, ...] = DEFAULT_FAULTS
    fault_every: float = 4.0
    settle_timeout: float = 30.0
    # A crashed invocation's lease expires after this. It must exceed twice the slowest step (the engine
    # renews a lease with less than half left, then runs the step): 500 x2 costs ~2.4 s of SDK backoff.
    lease_seconds: float = 8.0
    backoff_seconds: float = 1.0  # first retry after a failed step (doubles, capped at 4 x)


@dataclass(frozen=True)
class Action:
    at: float
    kind: str  # admin | event | fault | crash
    target: str
    detail: str


@dataclass
class ScenarioResult:
    config: ScenarioConfig
    targets: tuple[Target, ...]
    started: float = 0.0
    rotation_started: float = 0.0
    rotation_ended: float = 0.0
    finished: float = 0.0
    settled: bool = False
    actions: list[Action] = field(default_factory=list)
    phase_changes: list[PhaseChange] = field(default_factory=list)
    history: dict[str, list[HistoryRecord]] = field(default_factory=dict)
    state_rows: list[dict[str, Any]] = field(default_factory=list)
    history_rows: list[dict[str, Any]] = field(default_factory=list)
    fleet: ConsumerFleet | None = None
    observations: Observations = field(default_factory=Observations)
    invariants: InvariantLog = field(default_factory=InvariantLog)
    watcher_errors: list[str] = field(default_factory=list)
    admin_responses: list[tuple[int, str]] = field(default_factory=list)
    kv_events: list[dict[str, Any]] = field(default_factory=list)
    lifecycle_events: list[dict[str, Any]] = field(default_factory=list)
    events_received: int = 0
    event_deliveries_failed: int = 0
    faults_left: list[dict[str, Any]] = field(default_factory=list)
    emulator_calls: dict[str, int] = field(default_factory=dict)
    emulator_stderr: str = ""
    log_lines: list[str] = field(default_factory=list)


def utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)
