"""Gate and report for `make scan`: reads checkov's JSON, prints the summary, every failed check and every
suppression with its reason, and exits non-zero on any failed check, any template checkov could not
parse, no passed check at all (a scan that read nothing), or a check that crashed inside checkov (logged
as "Failed to run check") on a resource that does not suppress it with a reason."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path


def main(path: str, log_path: str | None = None) -> int:
    text = Path(path).read_text()
    try:
        report = json.loads(text)
    except ValueError:
        print(f"checkov produced no JSON report:\n{text[:2000]}")
        return 1
    reports = report if isinstance(report, list) else [report]
    bicep = [r for r in reports if r.get("check_type") == "bicep"]
    if not bicep:
        print("checkov scanned no Bicep template")
        return 1
    summary = bicep[0]["summary"]
    results = bicep[0].get("results", {})
    for check in results.get("skipped_checks", []):
        reason = check.get("check_result", {}).get("suppress_comment", "")
        print(f"  skipped {check['check_id']} on {check['resource']} ({check['file_path']}): {reason}")
    for check in results.get("failed_checks", []):
        print(f"  FAILED {check['check_id']} {check['check_name']} on {check['resource']} "
              f"({check['file_path']}:{check['file_line_range']})")  # fmt: skip
    skipped = {(c["check_id"], c["resource"]) for c in results.get("skipped_checks", [])}
    crashed = set()
    if log_path and Path(log_path).exists():
        crashed = set(re.findall(r"Failed to run check (\S+) on \S+?:(\S+)", Path(log_path).read_text()))
    unexplained = crashed - skipped
    for check_id, resource in sorted(crashed):
        state = "suppressed in place" if (check_id, resource) in skipped else "NOT SUPPRESSED"
        print(f"  checkov crashed evaluating {check_id} on {resource} ({state})")
    print(
        f"checkov (bicep): {summary['passed']} passed, {summary['failed']} failed, "
        f"{summary['skipped']} skipped, {summary['parsing_errors']} parsing errors"
    )
    return 1 if summary["failed"] or summary["parsing_errors"] or not summary["passed"] or unexplained else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
