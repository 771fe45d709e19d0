"""The evidence workbook and the alert rules query the engine's own records. Each deployed query runs
here (tests/infra/kql.py) over the `traces` rows the real engine logs while it adopts, rotates, drains,
is asked for an emergency rotation and fails - so a renamed step or field breaks this test, not the
portal."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from tests.infra import bicep, kql
from tests.infra.bicep import MAIN
from tests.unit.rig import Rig, make_rig, transient

WORKBOOK = bicep.app_module("workbook")
ALERTS = bicep.app_module("alerts")
QUERIES = ("keyAgeQuery", "rotationsPerDayQuery", "failuresQuery", "overdueQuery", "drainsQuery")


class _Traces(logging.Handler):
    """What Application Insights stores for each `rotation` log record: its time and its message."""

    def __init__(self, rig: Rig) -> None:
        super().__init__(logging.INFO)
        self.rig = rig
        self.rows: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.rows.append({"timestamp": self.rig.clock.now, "message": record.getMessage()})


def _account(rig: Rig, index: int) -> str:
    return rig.target(index).resource_id


@pytest.fixture(scope="module")
def history() -> Iterator[tuple[Rig, list[dict[str, Any]]]]:
    """Three targets over 32 days: all adopted; 'full' and 'short' rotate on schedule; 'short' is then
    asked for an emergency rotation in its drain; 'broken' keeps failing to regenerate."""
    rig = make_rig(names=("full", "short", "broken"))
    traces = _Traces(rig)
    logger = logging.getLogger("rotation")
    previous = logger.level
    logger.addHandler(traces)
    logger.setLevel(logging.INFO)
    try:
        rig.service.sweep()
        rig.clock.advance(days=30)
        # 'broken' is the third target swept: let the first two regenerate, then fail every call
        original = rig.keys.regenerate_key

        def regenerate(resource_id: str, slot: Any) -> Any:
            if resource_id == _account(rig, 2):
                raise transient("arm.regenerate_key")
            return original(resource_id, slot)

        rig.keys.regenerate_key = regenerate  # type: ignore[method-assign]
        rig.service.sweep()
        rig.clock.advance(hours=5)
        rig.service.request_rotation("short", emergency=True, reason="key leaked")
        rig.clock.advance(hours=20)
        rig.service.sweep()
        rig.clock.advance(days=1)
        rig.service.sweep()
        yield rig, traces.rows
    finally:
        logger.removeHandler(traces)
        logger.setLevel(previous)


def _run(path, name: str, rows: list[dict[str, Any]], rig: Rig) -> list[dict[str, Any]]:
    return kql.run(bicep.resolve(path, name), {"traces": rows}, rig.clock.now)


def test_the_scenario_produced_the_records_the_queries_read(history):
    _rig, rows = history
    messages = [row["message"] for row in rows]
    assert any(m.startswith("rotation.sweep ") for m in messages)
    steps = {json.loads(m[20:])["step"] for m in messages if m.startswith("rotation.transition ")}
    assert {"adopt", "verify_and_swap", "retire_old", "request"} <= steps


def test_key_age_per_target(history):
    rig, rows = history
    ages = {row["target"]: row for row in _run(WORKBOOK, "keyAgeQuery", rows, rig)}
    assert set(ages) == {_account(rig, i) for i in range(3)}
    # full and short swapped in a new key 30 days after adoption, 2 days before "now"
    for index in (0, 1):
        assert ages[_account(rig, index)]["since"] == "rotated"
        assert ages[_account(rig, index)]["keyAgeDays"] == 2.0
    # broken never swapped: its key is at least as old as its adoption, 32 days ago
    assert ages[_account(rig, 2)]["since"] == "adopted (key is older)"
    assert ages[_account(rig, 2)]["keyAgeDays"] == 32.0
    ordered = [row["keyAgeDays"] for row in _run(WORKBOOK, "keyAgeQuery", rows, rig)]
    assert ordered == sorted(ordered, reverse=True)


def test_rotations_per_day_count_completed_cycles(history):
    rig, rows = history
    per_day = _run(WORKBOOK, "rotationsPerDayQuery", rows, rig)
    assert sum(row["rotations"] for row in per_day) == 2  # full and short; broken never completed
    assert [row["day"] for row in per_day] == sorted(row["day"] for row in per_day)
    assert all(row["day"].hour == 0 for row in per_day)


def test_failures_name_the_target_step_and_error_never_a_value(history):
    rig, rows = history
    failures = _run(WORKBOOK, "failuresQuery", rows, rig)
    assert failures, "the broken target's failures are missing"
    assert {row["target"] for row in failures} == {_account(rig, 2)}
    assert all(row["error"].startswith("TransientAzureError") for row in failures)
    assert sum(row["failures"] for row in failures) >= 1
    for key in rig.world.account(_account(rig, 0)).keys.values():
        assert key not in json.dumps(failures, default=str)


def test_overdue_targets_over_time(history):
    rig, rows = history
    hours = _run(WORKBOOK, "overdueQuery", rows, rig)
    assert hours[0]["overdue"] == 0
    # broken is past its period plus a day of grace at the last sweep
    assert hours[-1]["overdue"] >= 1


def test_drains_have_a_length_and_an_ending(history):
    rig, rows = history
    drains = {row["target"]: row for row in _run(WORKBOOK, "drainsQuery", rows, rig)}
    assert set(drains) == {_account(rig, 0), _account(rig, 1)}  # broken never swapped
    full, short = drains[_account(rig, 0)], drains[_account(rig, 1)]
    assert full["ended"] == "ran its full drain" and full["retiredBy"] == "timer"
    assert full["drainHours"] >= 24.0
    assert short["ended"] == "shortened by an emergency request"
    assert short["drainHours"] == 5.0


def test_a_drain_in_progress_is_reported_as_such():
    rig = make_rig()
    traces = _Traces(rig)
    logger = logging.getLogger("rotation")
    logger.addHandler(traces)
    logger.setLevel(logging.INFO)
    try:
        rig.service.sweep()
        rig.clock.advance(days=30)
        rig.service.sweep()
        rig.clock.advance(hours=3)
    finally:
        logger.removeHandler(traces)
    [drain] = _run(WORKBOOK, "drainsQuery", traces.rows, rig)
    assert drain["ended"] == "still draining" and drain["retired"] is None
    assert drain["drainHours"] == 3.0


@pytest.mark.parametrize(
    "name, expected",
    [("rotationFailedQuery", True), ("targetOverdueQuery", True), ("sweepMissingQuery", True)],
)
def test_alert_queries_fire_on_the_engines_records(history, name: str, expected: bool):
    rig, rows = history
    found = _run(ALERTS, name, rows, rig)
    assert bool(found) is expected
    if name == "rotationFailedQuery":
        assert {row["target"] for row in found} == {_account(rig, 2)}
        assert {row["step"] for row in found} <= {"regenerate_new", "start_cycle", "cycle"}
        assert all(row["error"] for row in found)


def test_alert_queries_stay_quiet_on_a_healthy_history():
    rig = make_rig()
    traces = _Traces(rig)
    logger = logging.getLogger("rotation")
    logger.addHandler(traces)
    logger.setLevel(logging.INFO)
    try:
        rig.service.sweep()
        rig.clock.advance(days=30)
        rig.service.sweep()
        rig.clock.advance(days=1, hours=1)
        rig.service.sweep()
    finally:
        logger.removeHandler(traces)
    assert _run(ALERTS, "rotationFailedQuery", traces.rows, rig) == []
    assert _run(ALERTS, "sweepMissingQuery", traces.rows, rig) != []  # sweeps ran: the heartbeat is there


def test_every_workbook_panel_is_one_of_these_queries_and_the_workbook_is_deployed():
    panels = bicep.resolve(WORKBOOK, "panels")
    assert {panel["query"] for panel in panels} == set(QUERIES)
    assert all(panel["visualization"] in ("table", "barchart", "timechart") for panel in panels)
    workbook = bicep.the_resource(WORKBOOK, "Microsoft.Insights/workbooks")
    assert workbook.body["kind"] == "shared"
    assert workbook.properties["sourceId"] == "applicationInsightsId"
    assert bicep.render(workbook.properties["serializedData"]) == "string(workbookContent)"
    call = bicep.module(MAIN, "workbook")
    assert call.condition is None
    assert (
        bicep.render(call.body["params"]["applicationInsightsId"])
        == "monitoring.outputs.applicationInsightsId"
    )


def test_key_age_reaches_back_further_than_the_default_rotation_period():
    # Key age and overdue panels use a fixed 90-day window; the logs must be kept that long.
    assert bicep.resolve(WORKBOOK, "ninetyDays") == 90 * 24 * 3600 * 1000
    retention = bicep.param(bicep.app_module("monitoring"), "retentionInDays")["default"]
    assert retention >= 90
    assert timedelta(days=retention) > timedelta(days=30)
