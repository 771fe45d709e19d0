"""Cold start: import time of ``function_app`` versus importing every Azure SDK the app uses up front.

    python -m bench.import_time            # 7 runs each, median
    python -m bench.import_time --runs 3

Each run is a fresh interpreter with ``python -X importtime``; the figure is the cumulative import time
of the measured statement's top-level modules (interpreter start-up excluded). A second figure is the
wall-clock time of the same import measured inside the child with ``time.perf_counter``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.harness import Report, median

REPO_ROOT = Path(__file__).resolve().parents[1]
SDKS = (
    "azure.identity",
    "azure.keyvault.secrets",
    "azure.mgmt.cognitiveservices",
    "azure.data.tables",
    "azure.eventgrid",
    "azure.storage.queue",
)
FUNCTION_APP = "import function_app"
EVERY_SDK = "import " + ", ".join(SDKS)
# Printed by the child after the measured import: wall time and which heavy SDKs ended up loaded.
PROBE = (
    "import time, sys, json\n"
    "started = time.perf_counter()\n"
    "{statement}\n"
    "elapsed = time.perf_counter() - started\n"
    "print(json.dumps({{'seconds': elapsed, 'loaded': sorted(m for m in {sdks!r} if m in sys.modules)}}))\n"
)


def parse_importtime(stderr: str, statement_started: int) -> float:
    """Sum of the cumulative times (seconds) of top-level imports from line ``statement_started`` on."""
    total_us = 0
    for line in stderr.splitlines()[statement_started:]:
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|")
        if name.startswith("  ") or not cumulative.strip().isdigit():
            continue  # nested import (indented) or the header line
        total_us += int(cumulative.strip())
    return total_us / 1e6


def one_run(statement: str) -> tuple[float, float, list[str]]:
    """(importtime seconds, wall seconds, SDKs loaded) of ``statement`` in a fresh interpreter."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    baseline = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "pass"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    startup_lines = len(baseline.stderr.splitlines())
    code = PROBE.format(statement=statement, sdks=SDKS)
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        check=True,
    )
    # The first lines are the interpreter's own start-up imports, the same as for ``pass``.
    lines = result.stderr.splitlines()
    start = startup_lines if lines[:startup_lines] == baseline.stderr.splitlines() else 0
    child = json.loads(result.stdout.strip().splitlines()[-1])
    return parse_importtime(result.stderr, start), float(child["seconds"]), list(child["loaded"])


def measure(runs: int) -> Report:
    report = Report("bench.import_time: cold import of function_app vs every SDK up front")
    figures: dict[str, dict[str, object]] = {}
    for label, statement in (("function_app", FUNCTION_APP), ("every SDK", EVERY_SDK)):
        samples = [one_run(statement) for _ in range(runs)]
        importtime = median(s[0] for s in samples)
        wall = median(s[1] for s in samples)
        figures[label] = {"importtime": importtime, "wall": wall, "loaded": samples[-1][2], "runs": runs}
        report.add(
            f"{label} ({runs} runs, median)",
            f"-X importtime {importtime * 1000:.0f} ms, wall {wall * 1000:.0f} ms; "
            f"SDKs loaded: {', '.join(samples[-1][2]) or 'none'}",
        )
    report.ratio(
        "every SDK / function_app (importtime)",
        float(figures["every SDK"]["importtime"]) / float(figures["function_app"]["importtime"]),  # type: ignore[arg-type]
    )
    report.ratio(
        "every SDK / function_app (wall)",
        float(figures["every SDK"]["wall"]) / float(figures["function_app"]["wall"]),  # type: ignore[arg-type]
    )
    report.data = figures
    return report


def main(argv: Sequence[str] | None = None) -> Report:
    parser = argparse.ArgumentParser(prog="python -m bench.import_time", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    report = measure(args.runs)
    report.print()
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
