"""Terminal output with rich: a live status table while the scenario runs, a summary at the end."""

from __future__ import annotations

import threading
import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from demo.scenario import Action, ScenarioConfig
from demo.watchers import PhaseChange

PHASE_STYLE = {"idle": "green", "regenerating": "yellow", "verifying": "dark_orange", "draining": "blue",
               "retiring": "magenta", "adopting": "cyan", "keyless": "red"}


class LiveView:
    """Receives the scenario's progress callbacks (from several threads) and renders them."""

    def __init__(self, console: Console, config: ScenarioConfig) -> None:
        self.console = console
        self.config = config
        self.phases: dict[str, PhaseChange] = {}
        self.fleet: Any = None
        self.started: float | None = None
        self._lock = threading.Lock()
        self._live: Live | None = None

    # -- progress callback ----------------------------------------------------------------------------

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "starting":
            self.console.log(f"starting {data['what']} on free loopback ports")
        elif kind == "adopting":
            self.console.log(f"first timer tick adopts {', '.join(data['targets'])} "
                             "(ai-services keeps its existing Key Vault secrets and pointer)")
        elif kind == "consumers":
            self.console.log(f"{data['threads']} consumer threads calling both data planes "
                             f"(TTL {self.config.consumer_ttl} s)")
            self.fleet = data["fleet"]
            self.started = time.time()
        elif kind == "phase":
            self._phase(data["change"])
        elif kind == "action":
            self._action(data["action"])
        elif kind == "event":
            self.console.log(f"[cyan]Event Grid → key_vault_events[/]: {data['type'].rsplit('.', 1)[-1]} "
                             f"for {data['subject']}")
        elif kind == "settling":
            self.console.log("no new triggers; letting running cycles finish")
        elif kind == "timer_failed":
            self.console.log(f"[red]sweep_timer run failed[/] ({data['error']}); the next tick runs normally")

    def _phase(self, change: PhaseChange) -> None:
        with self._lock:
            previous = self.phases.get(change.target)
            self.phases[change.target] = change
        if previous is None or previous.phase == change.phase:
            return
        style = PHASE_STYLE.get(change.phase, "white")
        if change.phase == "regenerating" and previous.phase == "idle":
            text = f"cycle started by [bold]{change.trigger}[/], regenerating the inactive slot"
        elif change.phase == "draining":
            text = f"new key verified; pointer now [bold]{change.active_slot}[/]; draining"
        elif change.phase == "idle" and previous.phase == "retiring":
            text = f"old slot regenerated; cycle {change.cycles_completed} complete"
        else:
            text = change.phase
        self.console.log(f"[{style}]{change.target}[/]: {text}")

    def _action(self, action: Action) -> None:
        colour = {"admin": "cyan", "event": "cyan", "crash": "red", "fault": "red"}[action.kind]
        where = f" {action.target}" if action.target else ""
        self.console.log(f"[{colour}]{action.kind}[/]{where}: {action.detail}")

    # -- live table -----------------------------------------------------------------------------------

    def render(self) -> Group:
        table = Table(title=None, expand=False)
        for column in ("target", "phase", "active slot", "cycles", "started by"):
            table.add_column(column)
        with self._lock:
            phases = dict(self.phases)
        for name, change in sorted(phases.items()):
            style = PHASE_STYLE.get(change.phase, "white")
            table.add_row(name, f"[{style}]{change.phase}[/]", change.active_slot or "-",
                          str(change.cycles_completed), change.trigger or "-")
        requests, failures = self.fleet.totals() if self.fleet is not None else (0, 0)
        elapsed = time.time() - self.started if self.started else 0.0
        colour = "green" if failures == 0 else "red"
        line = (f"elapsed {elapsed:5.1f} s of ~{self.config.duration:.0f} s   consumer requests {requests}   "
                f"failed [{colour}]{failures}[/]")
        return Group(table, line)

    def __enter__(self) -> LiveView:
        self._live = Live(get_renderable=self.render, console=self.console, refresh_per_second=4,
                          transient=True)
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)


def summary(console: Console, report: dict[str, Any], report_path: str, picture_path: str) -> None:
    consumers, cycles, inv = report["consumers"], report["cycles"], report["invariants"]
    verdict = ("[bold green]ZERO DOWNTIME[/]" if report["zeroDowntime"] else "[bold red]CONSUMERS FAILED[/]")
    table = Table(show_header=False, box=None)
    table.add_row("cycles completed", f"{cycles['completed']} ({_pairs(cycles['byTarget'])}; "
                                      f"triggered by {_pairs(cycles['byTrigger'])})")
    table.add_row("consumer requests", f"{consumers['requests']} by {consumers['threads']} threads "
                                       f"({consumers['requestsPerSecond']}/s), "
                                       f"failed: {consumers['failures']}")
    table.add_row("drains ended", "; ".join(
        f"{target}: {counts['acknowledged']} by acknowledgement, {counts['bound']} by bound"
        for target, counts in sorted(report["drains"].items())) or "none")
    phases = report["phases"]
    names = ("regenerating", "verifying", "draining", "retiring")
    table.add_row("phase medians", ", ".join(f"{n} {phases[n].get('medianMs', '-')} ms" for n in names))
    chaos = report["chaos"]
    table.add_row("chaos", f"{chaos['crashes']} crash, {len(chaos['faultsInjected'])} faults, "
                           f"{chaos['failedSteps']} failed steps retried later")
    table.add_row("events", f"{report['events']['keyVaultEventsEmitted']} Key Vault events, "
                            f"{_pairs(report['events']['outcomes'])}")
    if any(str(k).startswith("ignored:") for k in report["events"]["outcomes"]):
        table.add_row("", "ignored:<reason> = delivered and deliberately not acted on, never a failure — "
                          "refused: a cycle completed less than a drain ago (no second cycle); "
                          "stale_version: the secret was already rotated; cycle_in_progress: one is running "
                          "(docs/FUNCTIONS.md \"Event Grid\")")
    # I1-I6 in plain words: README "What the service guarantees".
    table.add_row("I1 pointer always accepted", _verdict(inv["I1"], f"{inv['I1']['samples']} samples"))
    table.add_row("I2 no regenerate of a live slot",
                  _verdict(inv["I2"], f"{inv['I2']['regenerates']} regenerates, min drain margin "
                                      f"{inv['I2']['minDrainMarginSeconds']} s"))
    table.add_row("I3 vault = service after cycles", _verdict(inv["I3"], f"{inv['I3']['checks']} checks"))
    table.add_row("I4 no overlapping cycles", _verdict(inv["I4"], f"{inv['I4']['cyclesChecked']} cycles"))
    leaks = inv["I5"]["leaks"]
    table.add_row("I5 no key value in any output",
                  f"{'[green]ok[/]' if leaks == 0 else f'[red]{leaks} leaks[/]'} "
                  f"({inv['I5']['keyValuesTracked']} values x {inv['I5']['textsScanned']} texts)")
    sleeps = inv["I6"]["sleeps"]
    table.add_row("I6 no sleeps in product code", f"{'[green]ok[/]' if not sleeps else '[red]found[/]'} "
                                                  f"({inv['I6']['filesScanned']} files)")
    table.add_row("report", report_path)
    table.add_row("picture", picture_path)
    console.print(Panel(table, title=verdict, expand=False))


def _verdict(check: dict[str, Any], detail: str) -> str:
    return f"{'[green]ok[/]' if not check.get('violations') else '[red]VIOLATED[/]'} ({detail})"


def _pairs(mapping: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(mapping.items())) or "none"
