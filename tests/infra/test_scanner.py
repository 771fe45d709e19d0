"""The IaC scanner is part of `make test`, and every suppression in the templates is justified in place."""

from __future__ import annotations

import re

from tests.infra import bicep
from tests.infra.bicep import ROOT

SKIP = re.compile(r"checkov:skip=([A-Za-z0-9_]+)(?::(.*))?")


def _suppressions() -> list[tuple[str, str, str]]:
    found = []
    for path in bicep.bicep_files():
        for line in path.read_text().splitlines():
            match = SKIP.search(line)
            if match:
                found.append((path.name, match.group(1), (match.group(2) or "").strip()))
    return found


def test_make_test_runs_the_scanner_first():
    makefile = (ROOT / "Makefile").read_text()
    test_line = re.search(r"^test:(.*)$", makefile, flags=re.M)
    assert test_line and "scan" in test_line.group(1).split()
    assert "checkov --directory infra --framework bicep" in makefile
    assert "tests/infra/scan_report.py" in makefile
    assert re.search(r"^checkov==3\.3\.\d+$", (ROOT / "requirements-scan.txt").read_text(), flags=re.M)


def test_the_scanner_gets_the_parser_the_tests_use():
    dev = (ROOT / "requirements-dev.txt").read_text()
    assert re.search(r"^pycep-parser==0\.7\.\d+$", dev, flags=re.M)
    assert "--no-deps '$(PYCEP_PIN)'" in (ROOT / "Makefile").read_text()


def test_every_suppression_names_one_check_and_says_why():
    suppressions = _suppressions()
    assert suppressions, "no suppression found: the scanner would have failed, or the regex is wrong"
    for file_name, check_id, reason in suppressions:
        assert re.fullmatch(r"CKV2?_AZURE_\d+", check_id), (file_name, check_id)
        assert len(reason.split()) >= 6, f"{file_name}: {check_id} is suppressed without a real reason"


def test_no_check_is_suppressed_twice_on_one_resource():
    for path in bicep.bicep_files():
        blocks = re.split(r"^resource ", path.read_text(), flags=re.M)
        for block in blocks[1:]:
            ids = SKIP.findall(block)
            names = [check_id for check_id, _ in ids]
            assert len(names) == len(set(names)), (path.name, block.split("\n", 1)[0])
