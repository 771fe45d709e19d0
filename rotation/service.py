"""The engine service: what the triggers (function_app.py) and the CLI call. Built once per process by
``shared.bootstrap.build_service(settings)``; tests build it with fakes or real adapters."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from functools import partial
from urllib.parse import urlparse

from rotation import release, reports, requests
from rotation.audit import log_sweep, logger
from rotation.catalog import TargetCatalog
from rotation.decision import Action, decide
from rotation.errors import UnknownTarget
from rotation.history_carry import merged_history
from rotation.model import (
    HistoryRecord,
    Policy,
    Target,
    TargetState,
    VersionedState,
    is_overdue,
    state_of,
    table_key,
)
from rotation.outcomes import TargetOutcome
from rotation.pacing import Budget, by_second, pace
from rotation.ports import Clock, Ports, utc_now
from rotation.runner import StepRunner
from rotation.side_by_side import SideBySide, on_threads
from rotation.status import gone_status, target_status
from rotation.views import (
    KeyAgeReport,
    PlanEntry,
    SweepSummary,
    TargetResult,
    TargetStatus,
    to_json,
)

# A due target paced less than this away starts now. Twice the fan-out's 1 s: a target takes its first
# secret-write token only after its reads and ARM calls, so the bucket refills while the first ones run
# (1 s cost 8 % of a budget-bound cycle's wall time, 2 s none: docs/BENCHMARKS.md §7, fourth pass).
PACED_HORIZON_SECONDS = 2.0
ProgressCallback = Callable[[TargetResult], None]
PlannedCallback = Callable[[int], None]  # told how many targets the sweep will advance, before it starts


class RotationService:
    def __init__(
        self,
        targets: Iterable[Target],
        ports: Ports,
        policy: Policy | None = None,
        clock: Clock = utc_now,
        concurrency: int = 16,
        vault_url: str = "",
        catalog: TargetCatalog | None = None,
        pacing: tuple[Budget, Budget] | None = None,
        side_by_side: SideBySide = on_threads,
    ) -> None:
        self.catalog = catalog or TargetCatalog(tuple(targets), clock=clock)
        self.ports = ports
        self.policy = policy or Policy()
        self.clock = clock
        self.concurrency = max(1, concurrency)
        self.vault_url = vault_url
        self.runner = StepRunner(ports, self.policy, clock)
        # (ARM writes per subscription, Key Vault secret writes per vault): a sweep starts only the due
        # targets the budgets can pay now and sends the rest back at their paced time (``pace``)
        self.pacing = pacing
        self.side_by_side = side_by_side

    @property
    def targets(self) -> tuple[Target, ...]:
        """The targets known now: ROTATION_TARGETS plus, with discovery, the tagged accounts."""
        return self.catalog.targets

    # ------------------------------------------------------------ lookup

    def resolve(self, target: str | Target) -> Target:
        """A known target from a Target, its resource id or its account name; raises UnknownTarget."""
        if isinstance(target, Target):
            target = target.resource_id
        text = target.strip()
        found = self.catalog.find(text)
        if found is None and self.catalog.discovering:
            self.catalog.refresh(force=False)  # tagged since this process last listed the accounts?
            found = self.catalog.find(text)
        if found is None:
            where = "ROTATION_TARGETS"
            if self.catalog.discovering:
                where += " or tagged for discovery"
            raise UnknownTarget(f"{text!r} is not a configured target ({where})")
        return found

    def find_target_for_secret(self, vault_url: str, secret_name: str) -> Target | None:
        """The target owning ``secret_name`` in that vault, or None (other vault / unmanaged secret)."""
        for target in self.catalog.with_secret(secret_name):
            vault = target.vault_url or self.vault_url
            if not vault_url or not vault or _same_vault(vault_url, vault):
                return target
        return None

    # ------------------------------------------------------------ sweep

    def due_targets(self) -> list[Target]:
        """Targets with a step ready now (what a fan-out timer enqueues)."""
        self.catalog.refresh()
        now = self.clock()
        loaded = self._load_all()
        return [
            t
            for t in self.targets
            if decide(state_of(loaded.get(t.state_key)), t, now, self.policy, owner="").actionable
        ]

    def paced_due_targets(self, arm: Budget, vault: Budget) -> list[tuple[Target, float]]:
        """Due targets with the delay each should wait so the wave fits the write budgets (fan-out)."""
        self.catalog.refresh()
        now = self.clock()
        loaded = self._load_all()
        work = []
        for target in self.targets:
            decision = decide(state_of(loaded.get(target.state_key)), target, now, self.policy, owner="")
            if decision.actionable:
                work.append((target, decision.action))
        delays = pace(work, arm, vault, self.ports.vault_key)
        return [(target, delay) for (target, _), delay in zip(work, delays, strict=True)]

    def sweep(
        self,
        trigger: str = "timer",
        progress: ProgressCallback | None = None,
        planned: PlannedCallback | None = None,
        stop: threading.Event | None = None,
    ) -> SweepSummary:
        """One timer tick: adopt, advance, retry and drift-check every target that has something due.

        Once ``stop`` is set no further target is started; targets already started finish their steps (a
        step is never cut in half), so the state stays resumable and the summary counts the rest as
        ``interrupted``."""
        started = time.monotonic()
        self.catalog.refresh()
        now = self.clock()
        loaded = self._load_all()
        due: list[tuple[Target, VersionedState | None]] = []
        actions: list[Action] = []
        next_due: datetime | None = None
        busy = not_due = 0
        for target in self.targets:
            current = loaded.get(target.state_key)
            decision = decide(state_of(current), target, now, self.policy, owner="")
            if decision.actionable:
                due.append((target, current))
                actions.append(decision.action)
            else:
                busy += decision.action is Action.BUSY
                not_due += decision.action is not Action.BUSY
                next_due = _earliest(next_due, decision.not_before)
        due, paced = self._pace(due, actions)
        if planned is not None:
            planned(len(due))

        results, interrupted = self._advance_side_by_side(due, trigger, True, progress, stop)
        for result in results:
            next_due = _earliest(next_due, result.next_due)
        summary = SweepSummary(
            seen=len(self.targets),
            advanced=sum(r.outcome is TargetOutcome.ADVANCED for r in results),
            failed=sum(r.outcome is TargetOutcome.FAILED for r in results),
            next_due=next_due,
            busy=busy + sum(r.outcome is TargetOutcome.BUSY for r in results),
            deferred=paced + sum(r.outcome is TargetOutcome.DEFERRED for r in results),
            duration_ms=int((time.monotonic() - started) * 1000),
            overdue=sum(
                is_overdue(state_of(loaded.get(t.state_key)), now, self.policy.overdue_grace)
                for t in self.targets
            ),
            not_due=not_due + sum(r.outcome in (TargetOutcome.IDLE, TargetOutcome.WAITING) for r in results),
            interrupted=interrupted,
            gone=sum(self.catalog.by_key(key) is None for key in loaded),
            rejected=len(self.catalog.rejected),
            discovery_error=self.catalog.last_error,
            results=tuple(results),
        )
        log_sweep(to_json(summary))
        return summary

    def _pace(
        self, due: list[tuple[Target, VersionedState | None]], actions: list[Action]
    ) -> tuple[list[tuple[Target, VersionedState | None]], int]:
        """The due targets the write budgets can pay within PACED_HORIZON_SECONDS, and how many were sent
        back: a target past that would only have its take refused after its reads (Key Vault reads, a
        budget read, a state write and a history row, measured — docs/BENCHMARKS.md §7), so it goes back
        on the queue at its paced time instead, as the fan-out's would, having touched nothing."""
        if self.pacing is None or not due:
            return due, 0
        arm, vault = self.pacing
        work = [(target, action) for (target, _), action in zip(due, actions, strict=True)]
        delays = pace(work, arm, vault, self.ports.vault_key)
        start: list[tuple[Target, VersionedState | None]] = []
        later: list[tuple[str, float]] = []
        for item, delay in zip(due, delays, strict=True):
            if delay < PACED_HORIZON_SECONDS:
                start.append(item)
            else:
                later.append((item[0].resource_id, delay))
        for seconds, resource_ids in by_second(later).items():
            self.ports.scheduler.schedule_many(resource_ids, seconds)
        return start, len(due) - len(start)

    def _advance_side_by_side(
        self,
        work: Sequence[tuple[Target, VersionedState | None]],
        trigger: str,
        preloaded: bool,
        progress: ProgressCallback | None = None,
        stop: threading.Event | None = None,
    ) -> tuple[list[TargetResult], int]:
        """Advance the targets side by side (``side_by_side``: threads, or greenlets on the I/O loop), at most
        ``concurrency`` at once: (results, how many were not started because ``stop`` was set)."""

        def advance(target: Target, current: VersionedState | None) -> TargetResult | None:
            if stop is not None and stop.is_set():
                return None  # not started: the next sweep finds it as it was
            return self._advance_safely(target, trigger, current, preloaded)

        results: list[TargetResult] = []
        interrupted = 0

        def collect(result: TargetResult | None) -> None:
            nonlocal interrupted
            if result is None:
                interrupted += 1
                return
            results.append(result)
            if progress is not None:
                progress(result)

        if work:  # a lone one too (a deferral's message, most often): a greenlet's calls need no hand-off
            calls = [partial(advance, target, current) for target, current in work]
            self.side_by_side(calls, self.concurrency, collect, f"rotation-{trigger}")
        return results, interrupted

    def advance_target(self, target: str | Target, trigger: str = "queue") -> TargetResult:
        """Advance one target as far as it can go now (queue fan-out, CLI)."""
        return self._advance_safely(self.resolve(target), trigger, None)

    def advance_targets(
        self, names: Sequence[str], trigger: str = "queue"
    ) -> tuple[list[TargetResult], list[str]]:
        """Advance several targets side by side, as a sweep does (a queue message naming a group): their
        results, and the names that are no target (each raised ``UnknownTarget`` alone; the others ran)."""
        known: list[tuple[Target, VersionedState | None]] = []
        unknown: list[str] = []
        for name in dict.fromkeys(names):
            try:
                known.append((self.resolve(name), None))
            except UnknownTarget:
                unknown.append(name)
        results, _ = self._advance_side_by_side(known, trigger, False)
        return results, unknown

    def _advance_safely(
        self, target: Target, trigger: str, current: VersionedState | None, preloaded: bool = False
    ) -> TargetResult:
        try:
            return self.runner.advance(target, trigger, loaded=current, preloaded=preloaded)
        except Exception as exc:  # one target's bug must not stop the sweep; its lease simply expires
            logger.error("rotation.unexpected %s", f"{target.resource_id}: {type(exc).__name__}")
            return TargetResult(target.resource_id, TargetOutcome.FAILED, error=type(exc).__name__)

    # ---------------------------------------------------------- requests

    # Requests live in rotation/requests.py (judged by the pure ``judge_request``); they are methods here so
    # callers keep one object: ``service.request_rotation(...)``, ``service.handle_secret_near_expiry(...)``.
    request_rotation = requests.request_rotation
    handle_secret_near_expiry = requests.handle_secret_near_expiry
    release_drain = release.release_drain

    # ------------------------------------------------------------ reading

    def status(self, target: str | Target | None = None) -> list[TargetStatus]:
        """Every known target, then every target that has state but is no longer known (``gone``:
        deleted, untagged or removed from ROTATION_TARGETS — not rotated any more, history kept)."""
        self.catalog.refresh(force=False)
        if target is not None:
            try:
                one = self.resolve(target)
            except UnknownTarget:
                left = self._gone_state(target)
                if left is None:
                    raise
                return [self._gone_status(left)]
            return [self.status_of(one, state_of(self.ports.states.get(one.state_key)))]
        loaded = self._load_all()
        known = [self.status_of(t, state_of(loaded.get(t.state_key))) for t in self.targets]
        gone = [self._gone_status(v.state) for k, v in loaded.items() if self.catalog.by_key(k) is None]
        return known + gone

    def history(self, target: str | Target, limit: int = 20) -> list[HistoryRecord]:
        """History of a known target, or of a gone one by its resource id (history is never deleted):
        the history table's rows and those the state entity still carries (rotation/history_carry.py)."""
        try:
            key = self.resolve(target).state_key
            state = state_of(self.ports.states.get(key))  # the state first: see ``merged_history``
        except UnknownTarget:
            state = self._gone_state(target)
            if state is None:
                raise
            key = table_key(state.target_id)
        carried = state.history_carried if state else ()
        return merged_history(carried, self.ports.history.list(key, limit), limit)

    def plan(self) -> list[PlanEntry]:
        """What the next sweep would do first for each target (``decide``); changes nothing."""
        return reports.plan(self)

    def key_age_report(self, window: timedelta = timedelta(days=30)) -> KeyAgeReport:
        """Key age, last rotation, next due, overdue and recent failures per target; changes nothing."""
        return reports.key_age(self, window)

    # ------------------------------------------------------------ helpers

    def _load_all(self) -> dict[str, VersionedState]:
        return dict(self.ports.states.list_all())

    def _gone_state(self, target: str | Target) -> TargetState | None:
        text = target.resource_id if isinstance(target, Target) else target.strip()
        if not text.startswith("/"):
            return None
        return state_of(self.ports.states.get(table_key(text)))

    def _gone_status(self, state: TargetState) -> TargetStatus:
        return gone_status(state, self.clock())

    def status_of(self, target: Target, state: TargetState | None) -> TargetStatus:
        """The status view of one known target in ``state`` (used by requests too)."""
        return target_status(target, state, self.clock(), self.vault_url)


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def _same_vault(given: str, ours: str) -> bool:
    """Event payloads name the vault by URL or by bare name (``VaultName``)."""
    ours_host = (urlparse(ours).hostname or ours).lower()
    given = given.strip().lower()
    given_host = urlparse(given).hostname if "://" in given else given.rstrip("/")
    if not given_host:
        return False
    return given_host == ours_host or given_host == ours_host.split(".")[0]
