"""``python -m demo [--report PATH] [--duration SECONDS]`` — see docs/DEMO.md.

Exit status: 0 when consumers saw zero failures and every invariant held, 1 otherwise, 130 on Ctrl-C.
Everything the demo starts (emulator, Azurite, webhook receiver, threads) is stopped on every path.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path

from rich.console import Console


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.splitlines()[0])
    parser.add_argument("--report", default="demo-report.json", type=Path,
                        help="where to write the JSON report; the picture goes next to it (.png)")
    parser.add_argument("--duration", default=60.0, type=float,
                        help="seconds during which rotations are triggered (default 60; 10-600)")
    args = parser.parse_args(argv)
    if not 10 <= args.duration <= 600:
        parser.error("--duration must be between 10 and 600 seconds")
    if args.report.suffix.lower() == ".png":
        parser.error("--report names the JSON report; the picture is written next to it")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Ctrl-C and SIGTERM unwind through every `with` that started something (servers, threads); a shell that
    # launched us in the background may have left SIGINT ignored, so install the handlers explicitly.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    # Only our own records go to the terminal; the scenario captures every logger for the I5 scan.
    logging.getLogger("azure").setLevel(logging.WARNING)
    console = Console(record=True, log_path=False)
    from demo.analysis import build_report
    from demo.chart import draw
    from demo.console import LiveView, summary
    from demo.scenario import Scenario, ScenarioConfig

    config = ScenarioConfig(duration=args.duration)
    report_path: Path = args.report
    picture_path = report_path.with_suffix(".png")
    console.rule("ai-key-rotation demo: zero-downtime key rotation against a local Azure")
    view = LiveView(console, config)
    scenario = Scenario(config, progress=view)
    try:
        with view:
            result = scenario.run()
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: everything the demo started has been stopped[/]")
        return 130
    report = build_report(result, extra_texts=[console.export_text(clear=False)])
    report["picture"] = str(picture_path)
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    draw(result, picture_path)
    summary(console, report, str(report_path), str(picture_path))
    return 0 if report["zeroDowntime"] and report["invariantsHold"] else 1


if __name__ == "__main__":
    sys.exit(main())
