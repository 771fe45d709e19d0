"""Shared fixtures: the local Azure emulator and Azurite, started on free loopback ports.

- ``emulator`` (session): one emulator for the whole run, seeded with the demo account. Tests that only
  add their own accounts/secrets (unique names) use it as is; tests that change global behaviour (faults,
  latency, clock, propagation, throttling) must either use ``fresh_emulator`` or call
  ``emulator.control.reset()``/``clear_faults()`` in a finally block.
- ``fresh_emulator`` (function): a private emulator process for tests that mutate global things.
- ``azurite`` (session): Azurite tables + queues; ``.connection_string``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator.client.azurite import AzuriteProcess
from emulator.client.launcher import DEMO_ACCOUNT_ID, KEYS_FROM_STOPPED_EMULATORS, EmulatorProcess
from tests.support.leak_scan import PRODUCT_LOGGERS, SessionSink, SinkHandler, find_leaks, produced_files

# --- I5 across the whole session: everything the tests produce is scanned for every key issued ---------

_sink: SessionSink | None = None
_handler: SinkHandler | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _sink, _handler
    if hasattr(config, "workerinput"):
        return
    _sink = SessionSink(Path(config.rootpath) / ".pytest_cache" / "i5-session-scan.txt")
    _handler = SinkHandler(_sink)
    logging.getLogger().addHandler(_handler)
    for name in PRODUCT_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET or logger.level > logging.DEBUG:
            logger.setLevel(logging.DEBUG)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if _sink is None:
        return
    for title, content in report.sections:  # captured stdout/stderr/log of the test
        _sink.write(f"{report.nodeid} {title}", content)
    if report.failed:
        _sink.write(f"{report.nodeid} failure", report.longreprtext)


@pytest.hookimpl(trylast=True)  # after the runner's own sessionfinish has torn down session fixtures
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _sink is None or _handler is None:
        return
    logging.getLogger().removeHandler(_handler)
    _sink.close()
    keys = KEYS_FROM_STOPPED_EMULATORS  # the same set object the launcher fills (update, never rebound)
    texts = [("session output", _sink.path.read_text(encoding="utf-8", errors="replace"))]
    basetemp = session.config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    texts.extend(produced_files(Path(basetemp)))
    leaks = find_leaks(texts, keys)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    line = (
        f"I5 session scan: {len(keys)} issued keys vs {_sink.bytes_written} characters of logs/output"
        f" and {len(texts) - 1} produced files: {len(leaks)} leak(s)"
    )
    if reporter is not None:
        reporter.write_line(line)
        for leak in leaks:
            reporter.write_line(f"  key {leak.key_hint}… found in {leak.source}", red=True)
    if leaks:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def emulator() -> Iterator[EmulatorProcess]:
    with EmulatorProcess(accounts=[DEMO_ACCOUNT_ID]) as running:
        yield running


@pytest.fixture
def fresh_emulator() -> Iterator[EmulatorProcess]:
    with EmulatorProcess(accounts=[DEMO_ACCOUNT_ID]) as running:
        yield running


@pytest.fixture(scope="session")
def azurite() -> Iterator[AzuriteProcess]:
    with AzuriteProcess() as running:
        yield running
        _dump_tables(running)


def _dump_tables(azurite: AzuriteProcess) -> None:
    """Every state and history row the session left behind goes to the I5 scan."""
    if _sink is None:
        return
    from azure.data.tables import TableServiceClient

    with TableServiceClient.from_connection_string(azurite.connection_string) as service:
        for table in service.list_tables():
            with service.get_table_client(table.name) as client:
                for entity in client.list_entities():
                    _sink.write(f"azurite table {table.name}", repr(dict(entity)))


@pytest.fixture
def unique_name() -> str:
    """A name no other test uses (Key Vault secrets, accounts, tables) on the shared emulator."""
    return "t" + uuid.uuid4().hex[:12]
