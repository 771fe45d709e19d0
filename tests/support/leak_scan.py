"""Invariant I5 across a whole test session: no key value in anything the tests produced.

The emulator reports every key it issued; the session collects every log record (product loggers at
DEBUG), every test's captured output and failure text, every state/history row left in Azurite, and every
file written under pytest's temporary directory, and looks for each key in all of it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

# Loggers of the product (and its consumer library); their records are captured at every level.
PRODUCT_LOGGERS = ("rotation", "shared", "triggers", "function_app", "keyrotation_consumer", "demo")
# Files that legitimately hold keys: the emulator's own persisted state (it is the fake Azure).
EMULATOR_STATE_SUFFIXES = ("state.json",)
MAX_FILE_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class Leak:
    source: str
    key_hint: str  # the first 4 characters only: the report must not leak the key either


class SessionSink:
    """Appends every text the session produces to one file, so memory stays flat over a long run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = path.open("w", encoding="utf-8", errors="replace")
        self.bytes_written = 0

    def write(self, source: str, text: str) -> None:
        if text:
            chunk = f"\n=== {source}\n{text}\n"
            self._file.write(chunk)
            self.bytes_written += len(chunk)

    def close(self) -> None:
        self._file.close()


class SinkHandler(logging.Handler):
    def __init__(self, sink: SessionSink) -> None:
        super().__init__(level=logging.DEBUG)
        self.sink = sink
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.sink.write("log", self.format(record))  # format() includes exception text and stack
        except Exception:
            self.handleError(record)


def find_leaks(texts: Iterable[tuple[str, str]], keys: Iterable[str]) -> list[Leak]:
    wanted = {key for key in keys if len(key) >= 16}  # real keys are 32+ characters; never match noise
    leaks: list[Leak] = []
    for source, text in texts:
        for key in wanted:
            if key in text:
                leaks.append(Leak(source, key[:4]))
    return leaks


def produced_files(root: Path) -> Iterator[tuple[str, str]]:
    """Text of every file under ``root`` except the emulator's own persisted state."""
    if not root.exists():
        return
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.name.endswith(EMULATOR_STATE_SUFFIXES):
            continue
        if path.stat().st_size > MAX_FILE_BYTES:
            continue
        yield str(path), path.read_bytes().decode("utf-8", errors="replace")
