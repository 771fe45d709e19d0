"""`python -m demo` in its short mode, as `make demo` runs it: exit 0, a JSON report, a PNG next to it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_demo_short_run_writes_a_report_and_a_picture(tmp_path: Path) -> None:
    report_path = tmp_path / "out" / "short.json"
    completed = subprocess.run(
        [sys.executable, "-m", "demo", "--duration", "12", "--report", str(report_path)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    report = json.loads(report_path.read_text())
    assert report["zeroDowntime"] and report["invariantsHold"]
    assert report["consumers"]["failures"] == 0 and report["consumers"]["requests"] > 500
    assert report["cycles"]["completed"] >= 3
    assert {"regenerating", "verifying", "draining", "retiring"} <= set(report["phases"])
    assert report["phases"]["draining"]["medianMs"] >= 2000  # the drain is real time, stored as state
    picture = report_path.with_suffix(".png")
    assert report["picture"] == str(picture)
    assert picture.read_bytes()[:8] == PNG_SIGNATURE and picture.stat().st_size > 10_000
    assert "ZERO DOWNTIME" in completed.stdout


def test_demo_rejects_bad_arguments_before_starting_anything(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "demo", "--duration", "1", "--report", str(tmp_path / "r.json")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )
    assert completed.returncode == 2
    assert "--duration must be between 10 and 600" in completed.stderr
    assert not (tmp_path / "r.json").exists()


def test_ctrl_c_stops_everything_the_demo_started(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "demo", "--duration", "60", "--report", str(tmp_path / "r.json")],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:  # wait until servers and consumer threads are running
            if "consumer threads calling" in line:
                break
        children = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True,
                                  check=False).stdout.split()
        assert len(children) >= 3, children  # the emulator and Azurite's table and queue services
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, rest[-2000:]
    assert "everything the demo started has been stopped" in rest
    assert [child for child in children if Path(f"/proc/{child}").exists()] == []
    assert not (tmp_path / "r.json").exists()
