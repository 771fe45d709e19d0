"""HistoryStore.append_all (issue 17: one request per target and invocation) keeps every row and the
newest-first view, on the fake and on the Table adapter (Azurite) — the same cases for both."""

from __future__ import annotations

from .conftest import Backend
from .test_history_store import record


def test_rows_appended_together_are_listed_like_rows_appended_one_by_one(
    backend: Backend, unique_name: str
) -> None:
    together = [record(minutes, step=f"s{minutes}", cycle="c1") for minutes in range(4)]
    backend.history.append_all(unique_name, together)
    backend.history.append(unique_name, record(10, step="later"))
    listed = backend.history.list(unique_name)
    assert listed == [record(10, step="later"), *reversed(together)]


def test_more_rows_than_one_transaction_holds_are_all_written(backend: Backend, unique_name: str) -> None:
    many = [record(minutes, step=f"s{minutes}") for minutes in range(130)]  # a transaction holds 100
    backend.history.append_all(unique_name, many)
    assert backend.history.list(unique_name, limit=200) == list(reversed(many))


def test_appending_nothing_writes_nothing(backend: Backend, unique_name: str) -> None:
    backend.history.append_all(unique_name, [])
    assert backend.history.list(unique_name) == []
