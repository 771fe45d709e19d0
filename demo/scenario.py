"""The zero-downtime scenario: a local Azure, the Function App's handlers, live consumers, chaos.

1. Start an event receiver (the Functions host's Event Grid webhook), the emulator (Key Vault, ARM, data
   planes, managed identity; events posted to the receiver) and Azurite (state, history).
2. Seed two accounts: ``ai-services`` (whose Key Vault already holds ``ai-services-key1``, ``-key2`` and
   ``-active-key``, the seed material's layout — adopted as is) and ``contoso-openai`` (adopted fresh).
3. Call the handlers as the worker would: ``sweep_timer`` every tick (``ai-services`` is due every few
   seconds), ``admin_rotate`` and a near-expiry event (the emulator's clock moved forward so Key Vault
   emits ``SecretNearExpiry``, delivered through the webhook to ``key_vault_events``) for
   ``contoso-openai``; meanwhile consumers call both data planes through the consumer library.
4. Chaos mid-cycle: a crash right after a ``regenerateKey`` reached Azure (the lease expires, a later
   invocation resumes), and injected 429, 500, 503, timeout and dropped-connection faults on
   ``regenerateKey`` (the last two are not retried by azure-core for a POST: the step fails and a later
   invocation redoes it).
5. Settle (every target at rest), stop, and hand everything observed to the report.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from demo.consumers import KINDS, SITE_KIND, ConsumerFleet, ConsumerGroup
from demo.event_receiver import EventReceiver
from demo.function_host import FunctionHost
from demo.observed_ports import Observations, PointerReader, observe
from demo.run_context import app_settings, captured_logs, started_azurite, table_client
from demo.scenario_types import (
    DEFAULT_FAULTS,
    EVENT_DELIVERY_SECONDS,
    NEAR_EXPIRY_WINDOW,
    PRIMARY,
    RESOURCE_GROUP,
    SECONDARY,
    SITE,
    SITE_SETTING,
    SUBSCRIPTION,
    Action,
    Fault,
    ScenarioConfig,
    ScenarioResult,
    account_id,
    site_id,
    utc,
)
from demo.watchers import PhaseChange, PhaseWatcher, PointerSampler
from rotation.consumers import quiet_drain
from rotation.model import Policy, Target

# The configuration and result types moved to demo/scenario_types.py; callers keep importing them from here.
__all__ = [
    "DEFAULT_FAULTS", "EVENT_DELIVERY_SECONDS", "NEAR_EXPIRY_WINDOW", "PRIMARY", "RESOURCE_GROUP",
    "SECONDARY", "SITE", "SITE_SETTING", "SUBSCRIPTION", "Action", "Fault", "Progress", "Scenario",
    "ScenarioConfig", "ScenarioResult", "account_id", "site_id", "utc",
]

Progress = Callable[[str, dict[str, Any]], None]


class Scenario:
    def __init__(self, config: ScenarioConfig, progress: Progress | None = None) -> None:
        self.config = config
        self.progress = progress or (lambda kind, data: None)

    def _emit(self, kind: str, **data: Any) -> None:
        try:
            self.progress(kind, data)
        except Exception:  # a broken display must not break the run
            logging.getLogger("demo").exception("progress callback failed")

    def run(self) -> ScenarioResult:
        from emulator.client.azurite import AzuriteProcess
        from emulator.client.launcher import EmulatorProcess

        result = ScenarioResult(config=self.config, targets=())
        result.started = time.time()
        with captured_logs() as logs, EventReceiver() as receiver:
            self._emit("starting", what="emulator and Azurite")
            with EmulatorProcess(accounts=[account_id(PRIMARY)], event_webhook=receiver.url) as emulator, \
                    started_azurite(AzuriteProcess()) as azurite:
                try:
                    self._run_with(emulator, azurite, receiver, result)
                finally:
                    result.emulator_stderr = emulator.stderr_text()
            result.log_lines = list(logs.lines)
        result.finished = time.time()
        return result

    # -- the run ------------------------------------------------------------------------------------

    def _targets_json(self) -> str:
        c = self.config
        return json.dumps([
            {"resourceId": account_id(PRIMARY), "rotationPeriod": c.primary_period,
             "drainTime": c.primary_drain},
            {"resourceId": account_id(SECONDARY), "rotationPeriod": c.secondary_period,
             "consumers": [{"kind": "appService", "resourceId": site_id(SITE)},
                           {"kind": "library", "refreshBound": c.secondary_library_bound}]},
        ])

    def _run_with(self, emulator: Any, azurite: Any, receiver: EventReceiver, result: ScenarioResult) -> None:
        from rotation.service import RotationService
        from shared.azure.tables import TableStateStore
        from shared.bootstrap import build_credential, build_ports
        from shared.settings import load_settings
        from triggers import runtime

        c = self.config
        emulator.control.add_account(account_id(SECONDARY), kind="OpenAI")
        observer_secrets = emulator.secret_client()
        observer_arm = emulator.arm_client(SUBSCRIPTION)
        self._seed_primary_vault(observer_secrets, observer_arm, result.observations)
        settings_env = {
            **emulator.app_env,
            "AzureWebJobsStorage": azurite.connection_string,
            "ROTATION_TARGETS": self._targets_json(),
            "ROTATION_SCHEDULE": "*/1 * * * * *",
            "ROTATION_STATE_TABLE": "rotationstate",
            "ROTATION_HISTORY_TABLE": "rotationhistory",
            "ROTATION_QUEUE": "rotation-requests",
        }
        fleet: ConsumerFleet | None = None
        watchers: list[Any] = []
        with app_settings(settings_env):
            settings = load_settings(os.environ)
            targets = settings.targets
            result.targets = targets
            policy = Policy(
                verify_retry_interval=timedelta(seconds=0.5),
                lease_duration=timedelta(seconds=c.lease_seconds),
                backoff_base=timedelta(seconds=c.backoff_seconds),
                backoff_max=timedelta(seconds=4 * c.backoff_seconds),
                verify_timeout=settings.verify_timeout,
            )
            raw = build_ports(settings, build_credential(settings))
            ports = observe(raw, result.observations, PointerReader(observer_secrets, targets), targets)
            service = RotationService(targets, ports, policy, concurrency=settings.sweep_concurrency,
                                      vault_url=settings.key_vault_url)
            runtime.install(runtime.Runtime(settings=settings, service=service))
            try:
                host = FunctionHost()
                receiver.callback = self._event_handler(host, result)
                self._emit("adopting", targets=[t.account_name for t in targets])
                host.timer_tick()  # the first sweep adopts both targets
                secondary_target = targets[1]
                reference = (f"@Microsoft.KeyVault(SecretUri={emulator.vault_url}secrets/"
                             f"{secondary_target.active_secret})")
                emulator.control.add_site(site_id(SITE), {SITE_SETTING: reference})  # the app starts
                site_settings = emulator.control.site_app_settings
                remember = result.observations.remember
                table = TableStateStore(table_client(azurite.connection_string, settings.state_table))
                watcher = PhaseWatcher(table, targets, observer_secrets, observer_arm, result.invariants,
                                       on_change=lambda change: self._emit("phase", change=change))
                sampler = PointerSampler(targets, observer_secrets, emulator.dataplane_url,
                                         emulator.ca_bundle, result.invariants, remember)
                watchers = [watcher, sampler]
                for w in watchers:
                    w.start()
                fleet = ConsumerFleet(self._consumer_groups(targets), observer_secrets,
                                      emulator.dataplane_url, emulator.ca_bundle, remember,
                                      pace=c.consumer_pace,
                                      site_setting=lambda: site_settings(SITE)[SITE_SETTING])
                result.fleet = fleet
                fleet.start()
                self._emit("consumers", threads=sum(g.threads for g in fleet.groups), fleet=fleet)
                time.sleep(1.0)  # demo driver (not product code): consumers warm up before the first cycle
                self._drive(host, emulator, observer_secrets, watcher, targets, result, receiver)
                time.sleep(1.0)  # traffic keeps flowing after the last cycle
            finally:
                receiver.callback = None
                if fleet is not None:
                    fleet.stop()
                for w in watchers:
                    w.stop()
                    result.watcher_errors.extend(w.errors)
                    if isinstance(w, PhaseWatcher):
                        result.phase_changes = list(w.changes)
                self._collect(emulator, azurite, service, settings, result, receiver)
                runtime.reset()
                observer_secrets.close()
                observer_arm.close()

    def _seed_primary_vault(self, secrets: Any, arm: Any, observations: Observations) -> None:
        """What an existing installation has: both keys and the pointer (the seed material's names)."""
        keys = arm.accounts.list_keys(RESOURCE_GROUP, PRIMARY)
        observations.remember(keys.key1, keys.key2)
        secrets.set_secret(f"{PRIMARY}-key1", keys.key1)
        secrets.set_secret(f"{PRIMARY}-key2", keys.key2)
        secrets.set_secret(f"{PRIMARY}-active-key", "key1")

    def _consumer_groups(self, targets: tuple[Target, ...]) -> list[ConsumerGroup]:
        c = self.config
        groups = [
            ConsumerGroup(t.account_name, t.secret_prefix, kind, c.consumers_per_kind, c.consumer_ttl,
                          c.consumer_max_stale)
            for t in targets for kind in KINDS if kind != SITE_KIND
        ]
        secondary = targets[1]
        groups.append(ConsumerGroup(secondary.account_name, secondary.secret_prefix, SITE_KIND,
                                    c.consumers_per_kind, c.consumer_ttl, c.consumer_max_stale))
        if c.control_consumers:
            primary = targets[0]
            groups.append(ConsumerGroup(primary.account_name, primary.secret_prefix, "requests",
                                        c.control_consumers, c.control_ttl, 2 * c.control_ttl,
                                        label="control"))
        return groups

    def _event_handler(self, host: FunctionHost, result: ScenarioResult) -> Callable[[dict[str, Any]], None]:
        def handle(event: dict[str, Any]) -> None:
            self._emit("event", subject=event.get("subject"), type=event.get("eventType"))
            host.key_vault_event(event)

        return handle

    def _drive(self, host: FunctionHost, emulator: Any, secrets: Any, watcher: PhaseWatcher,
               targets: tuple[Target, ...], result: ScenarioResult, receiver: EventReceiver) -> None:
        c = self.config
        primary, secondary = targets
        start = result.rotation_started = time.time()
        next_tick = start
        # The secondary's first request goes out at once: its two cycles (admin, then event) must fit the
        # short run's 12 s with room for a slow machine, each needing a drain's rest after the last.
        next_secondary = start
        secondary_turn = 0
        next_fault = start + c.fault_every
        faults = list(c.faults)
        crash_at = start + c.crash_at if c.crash_at is not None else None
        settle_deadline: float | None = None
        while True:
            now = time.time()
            elapsed = now - start
            if now >= next_tick:
                next_tick = now + c.tick_interval
                try:
                    host.timer_tick()
                except Exception as error:  # a failed run shows in Application Insights; the next one runs
                    self._emit("timer_failed", error=type(error).__name__)
            phases = watcher.current()
            if elapsed < c.duration:
                # Armed between cycles, the crash hits the first regenerateKey of the primary's next cycle:
                # the run shows a clean cycle before the crashed one, whose lease then expires.
                if crash_at is not None and now >= crash_at and _at_rest(phases.get(primary.account_name)):
                    crash_at = None
                    result.observations.arm_crash(primary.resource_id)
                    self._record(result, "crash", primary, "crash right after the next regenerateKey")
                if faults and now >= next_fault and any(_in_cycle(p) for p in phases.values()):
                    fault = faults.pop(0)
                    options = dict(fault.options)
                    emulator.control.add_fault(fault.operation, **options)
                    self._record(result, "fault", None, f"{fault.label} on {fault.operation}")
                    next_fault = now + c.fault_every
                rest = phases.get(secondary.account_name)
                # Requests within a drain of the last cycle are refused: wait out the drain it needs at least.
                rested = rest is not None and now - rest.at > quiet_drain(secondary.consumers).total_seconds()
                if now >= next_secondary and _at_rest(rest) and rested:
                    if secondary_turn % 2 == 1 and self._near_expiry(emulator, secrets, secondary, result):
                        pass
                    else:
                        self._admin_request(host, secondary, result)
                    secondary_turn += 1
                    next_secondary = now + c.secondary_action_every
            else:
                if result.rotation_ended == 0.0:
                    result.rotation_ended = now
                    settle_deadline = now + c.settle_timeout
                    emulator.control.clear_faults()
                    self._emit("settling")
                # A near-expiry event the driver caused just before stopping is emitted on the emulator's
                # next second and then delivered: at rest counts only once it can no longer arrive, and once
                # the watcher has seen any cycle the last event handled may have started.
                quiet = (now - result.rotation_ended >= EVENT_DELIVERY_SECONDS
                         and now - receiver.last_dispatch >= WATCHER_CATCH_UP_READS * watcher.interval)
                if quiet and all(_at_rest(phases.get(t.account_name)) for t in targets):
                    # No event starts a cycle once the run has settled: the webhook is detached first. If a
                    # delivery was being handled, the cycle it may have started finishes before settling.
                    if receiver.detach():
                        result.settled = True
                        return
                if settle_deadline is not None and now > settle_deadline:
                    return
            time.sleep(0.02)  # demo driver pacing, not product code

    def _record(self, result: ScenarioResult, kind: str, target: Target | None, detail: str) -> None:
        action = Action(time.time(), kind, target.account_name if target else "", detail)
        result.actions.append(action)
        self._emit("action", action=action)

    def _admin_request(self, host: FunctionHost, target: Target, result: ScenarioResult) -> None:
        status, body = host.admin_rotate(target.account_name, reason="demo: operator asked for a rotation")
        result.admin_responses.append((status, json.dumps(body, sort_keys=True)))
        outcome = body.get("status") or body.get("error", {}).get("code")
        self._record(result, "admin", target, f"POST /api/targets/{target.account_name}/rotate -> {status} "
                                              f"{outcome}")

    def _near_expiry(self, emulator: Any, secrets: Any, target: Target, result: ScenarioResult) -> bool:
        """Move the emulator's clock to the moment Key Vault considers the active secret near expiry.

        Key Vault emits SecretNearExpiry once per version. Once the clock is ahead, a new version can reach
        its near-expiry time during its own cycle (the event is then ignored as a duplicate); if so there is
        nothing left to emit for it, and False tells the caller to use an admin request instead.
        """
        current = secrets.get_secret(target.active_secret).properties
        if current.expires_on is None:
            return False
        emitted = {(e["subject"], e["data"]["Version"]) for e in emulator.control.kv_events()
                   if e["eventType"].endswith("SecretNearExpiry")}
        if (target.active_secret, current.version) in emitted:
            return False
        expires = current.expires_on
        emulated_now = float(emulator.control.clock()["now"])
        due = (expires - NEAR_EXPIRY_WINDOW).timestamp()
        advance = max(0.0, due - emulated_now) + 1.0
        emulator.control.advance_clock(advance)
        self._record(result, "event", target, f"emulator clock +{timedelta(seconds=int(advance))}: "
                                              f"{target.active_secret} near expiry")
        return True

    def _collect(self, emulator: Any, azurite: Any, service: Any, settings: Any, result: ScenarioResult,
                 receiver: EventReceiver) -> None:
        for target in result.targets:
            result.history[target.account_name] = sorted(service.history(target, limit=1000),
                                                         key=lambda r: r.at)
        for table_name, rows in ((settings.state_table, result.state_rows),
                                 (settings.history_table, result.history_rows)):
            with table_client(azurite.connection_string, table_name) as client:
                rows.extend(dict(entity) for entity in client.list_entities())
        result.kv_events = emulator.control.kv_events()
        result.lifecycle_events = emulator.control.eventgrid_events()
        result.faults_left = emulator.control.faults()
        result.emulator_calls = emulator.control.calls()
        result.events_received = receiver.received
        result.event_deliveries_failed = receiver.failed


WATCHER_CATCH_UP_READS = 5  # the phase watcher's reads after the last event before at rest counts


def _in_cycle(change: PhaseChange | None) -> bool:
    return change is not None and change.phase in ("regenerating", "verifying", "draining", "retiring")


def _at_rest(change: PhaseChange | None) -> bool:
    return change is not None and change.phase == "idle" and not change.lease_held
