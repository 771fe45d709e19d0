"""The invariant checkers of demo/analysis.py flag violations (so their silence in the e2e run means
something): synthetic observations, no servers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from demo.analysis import Cycle, check_i2, check_i4, check_i5, scan_product_code_for_sleeps
from demo.observed_ports import Observations, PointerWrite, RegenerateCall
from demo.scenario import ScenarioConfig, ScenarioResult
from rotation.model import Target

RID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/acct"
TARGET = Target(resource_id=RID, secret_prefix="acct", drain_time=timedelta(seconds=2))


def _result(observations: Observations) -> ScenarioResult:
    return ScenarioResult(config=ScenarioConfig(), targets=(TARGET,), observations=observations)


def test_i2_flags_a_regenerate_of_the_slot_the_pointer_names() -> None:
    observations = Observations(regenerates=[RegenerateCall(RID, "key1", 10.0, pointer_before="key1")])
    assert check_i2(_result(observations))["violations"]


def test_i2_flags_a_regenerate_whose_effect_landed_after_the_pointer_moved_to_that_slot() -> None:
    """A slow call (SDK retries) outliving its lease: another invocation swapped to the slot meanwhile."""
    late = RegenerateCall(RID, "key1", 10.0, pointer_before="key2", pointer_after="key1")
    assert check_i2(_result(Observations(regenerates=[late])))["violations"]


def test_i2_flags_a_regenerate_within_the_drain_after_the_pointer_moved() -> None:
    writes = [PointerWrite(RID, "key1", 0.0, 0.1), PointerWrite(RID, "key2", 5.0, 5.1)]
    too_soon = Observations(pointer_writes=writes,
                            regenerates=[RegenerateCall(RID, "key1", 6.0, pointer_before="key2")])
    in_time = Observations(pointer_writes=writes,
                           regenerates=[RegenerateCall(RID, "key1", 7.2, pointer_before="key2")])
    assert check_i2(_result(too_soon))["violations"]
    verdict = check_i2(_result(in_time))
    assert verdict["violations"] == [] and verdict["minDrainMarginSeconds"] == 0.1


def test_i4_flags_overlapping_cycles() -> None:
    first = Cycle("acct", "c1", "timer", 0.0, 0.1, 0.2, 2.2, 2.5, 0)
    overlapping = Cycle("acct", "c2", "admin", 1.0, 1.1, 1.2, 3.2, 3.5, 0)
    after = Cycle("acct", "c3", "admin", 3.0, 3.1, 3.2, 5.2, 5.5, 0)
    assert check_i4([first, overlapping])["violations"]
    assert check_i4([first, after])["violations"] == []


def test_i5_finds_a_key_value_in_any_scanned_text() -> None:
    observations = Observations(key_values={"s3cr3t-key-value"})
    result = _result(observations)
    leaked = f"DEBUG azure header api-key: s3cr3t-key-value at {datetime.now(UTC)}"
    result.log_lines = ["INFO rotation fine", leaked]
    assert check_i5(result, [])["leaks"] == 1
    result.log_lines = ["INFO rotation fine"]
    assert check_i5(result, ["report without values"])["leaks"] == 0


def test_i6_scanner_finds_sleeps(tmp_path: Path) -> None:
    for package in ("rotation", "shared", "triggers"):
        (tmp_path / package).mkdir()
    (tmp_path / "function_app.py").write_text("import time\n")
    (tmp_path / "shared" / "waiter.py").write_text("import time\n\ndef wait():\n    time.sleep(5)\n")
    (tmp_path / "rotation" / "ok.py").write_text("# time.sleep(1) in a comment is fine\n")
    found = scan_product_code_for_sleeps(tmp_path)
    assert found["filesScanned"] == 3
    assert found["sleeps"] == ["shared/waiter.py:4: time.sleep(5)"]


def test_product_code_has_no_sleeps() -> None:
    """I6 on the real tree: waiting is stored state (drain_until, next_attempt_at), never a sleep."""
    found = scan_product_code_for_sleeps()
    assert found["filesScanned"] > 10
    assert found["sleeps"] == []
