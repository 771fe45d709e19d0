"""The session-wide I5 scan must be able to fail: it finds a key in logs, output and files."""

from __future__ import annotations

import logging
from pathlib import Path

from tests.support.leak_scan import SessionSink, SinkHandler, find_leaks, produced_files

KEY = "0123456789abcdef0123456789abcdef"


def test_a_key_in_a_log_record_exception_or_file_is_found_and_reported_without_the_key(tmp_path: Path):
    sink = SessionSink(tmp_path / "scan.txt")
    logger = logging.getLogger("rotation.test_leak_scan")
    handler = SinkHandler(sink)
    logger.addHandler(handler)
    try:
        logger.info("nothing to see")
        try:
            raise ValueError(f"bad key {KEY}")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
        sink.close()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "report.json").write_text(f'{{"key": "{KEY}"}}')
    (tmp_path / "out" / "emulator.state.json").write_text(KEY)  # the fake Azure's own store: allowed
    texts = [("log", sink.path.read_text()), *list(produced_files(tmp_path / "out"))]
    leaks = find_leaks(texts, {KEY, "short"})
    assert sorted(leak.source for leak in leaks) == sorted(["log", str(tmp_path / "out" / "report.json")])
    assert all(leak.key_hint == KEY[:4] and KEY not in repr(leak) for leak in leaks)


def test_clean_texts_have_no_leaks():
    assert find_leaks([("log", "rotation.transition {\"slot\": \"key2\"}")], {KEY}) == []
