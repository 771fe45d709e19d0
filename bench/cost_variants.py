"""Each engine change of issue 17 undone on its own, so ``bench.cost_per_cycle`` measures what every one
of them buys in the same run, interleaved with the others (docs/BENCHMARKS.md §7).

- ``now``: the engine as it is;
- ``env``: sessions trust the environment again (requests re-reads proxies, ``.netrc`` and the CA
  variables on every request — the behaviour before, with ~100 variables to scan);
- ``logging``: azure-core's HTTP logging policy back at the root logger's INFO (two records per call);
- ``reserve``: no budget reserve (a Table read + compare-and-swap per budget take, as before);
- ``history``: one Table request per history row instead of one transaction per target and invocation;
- ``before``: all four undone at once.
Token fetching (one per scope) only matters in a fresh process's first sweep and is not varied here.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rotation.ports import HistoryStore
from shared.azure import budget_table
from shared.azure.tables import TableHistoryStore
from shared.bootstrap import HTTP_LOGGER
from shared.http_settings import HttpEnvironment
from shared.settings import Settings

VARIANTS: dict[str, frozenset[str]] = {
    "now": frozenset(),
    "env": frozenset({"env"}),
    "logging": frozenset({"logging"}),
    "reserve": frozenset({"reserve"}),
    "history": frozenset({"history"}),
    "before": frozenset({"env", "logging", "reserve", "history"}),
}


def settings_for(settings: Settings, variant: str) -> Settings:
    """``env`` needs its own service: its sessions are built trusting the environment."""
    if "env" in VARIANTS[variant]:
        return dataclasses.replace(settings, http=HttpEnvironment(use_proxy_settings=True))
    return settings


@contextmanager
def undone(variant: str) -> Iterator[None]:
    """While inside, the process-wide changes named by ``variant`` are reverted."""
    changes = VARIANTS[variant]
    http_logger = logging.getLogger(HTTP_LOGGER)
    level, reserve = http_logger.level, budget_table.RESERVE_TAKES
    append_all: Any = TableHistoryStore.append_all
    if "logging" in changes:
        http_logger.setLevel(logging.INFO)
    if "reserve" in changes:
        budget_table.RESERVE_TAKES = 0
    if "history" in changes:
        TableHistoryStore.append_all = HistoryStore.append_all  # type: ignore[method-assign]
    try:
        yield
    finally:
        http_logger.setLevel(level)
        budget_table.RESERVE_TAKES = reserve
        TableHistoryStore.append_all = append_all  # type: ignore[method-assign]
