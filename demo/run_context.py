"""The contexts a scenario run sits in: its captured logs, the Function App's settings, a started Azurite.

Split from ``demo/scenario.py`` (the run itself); none of these knows about the scenario.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class LogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
        except Exception:
            text = str(record.msg)
        with self._guard:
            self.lines.append(f"{record.levelname} {record.name} {text}")


@contextmanager
def captured_logs() -> Iterator[LogCapture]:
    capture = LogCapture()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(capture)
    root.setLevel(logging.INFO)
    try:
        yield capture
    finally:
        root.removeHandler(capture)
        root.setLevel(previous)


@contextmanager
def app_settings(values: dict[str, str]) -> Iterator[None]:
    """The Function App reads its settings from the process environment, as on Azure."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def started_azurite(azurite: Any) -> Iterator[Any]:
    """Azurite's table and queue services start in parallel (each is a Node.js process taking seconds)."""
    starters = [threading.Thread(target=service.start, args=(azurite.startup_timeout,))
                for service in (azurite.table, azurite.queue)]
    try:
        for starter in starters:
            starter.start()
        for starter in starters:
            starter.join()
        if azurite.table.url is None or azurite.queue.url is None:
            raise RuntimeError("Azurite did not start (is `npm ci` done? `make deps` runs it)")
        azurite.wait_until_serving()
        yield azurite
    finally:
        azurite.stop()


def table_client(connection_string: str, table: str) -> Any:
    from azure.data.tables import TableClient

    return TableClient.from_connection_string(connection_string, table)

