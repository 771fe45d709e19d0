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


def test_invocations_whose_times_overlap_list_exactly_newest_first_at_every_limit(
    backend: Backend, unique_name: str
) -> None:
    """An invocation's rows may be older than a later invocation's newest one (the Table adapter stores
    them together, sorted by their newest): the view is still the newest ``limit`` rows in time order."""
    first = [record(minutes, step=f"a{minutes}") for minutes in (0, 5, 10)]
    second = [record(minutes, step=f"b{minutes}") for minutes in (3, 4)]
    backend.history.append_all(unique_name, first)
    backend.history.append_all(unique_name, second)
    backend.history.append(unique_name, record(7, step="c7"))
    expected = ["a10", "c7", "a5", "b4", "b3", "a0"]
    for limit in range(1, 8):
        assert [r.step for r in backend.history.list(unique_name, limit=limit)] == expected[:limit], limit


def test_an_invocation_larger_than_one_table_property_keeps_every_row(
    backend: Backend, unique_name: str
) -> None:
    """100 rows of ~1 KB (a Table string property holds 64 KiB): split, none lost, order kept."""
    many = [record(minutes, step=f"s{minutes}", error="E" * 1_000) for minutes in range(100)]
    backend.history.append_all(unique_name, many)
    assert backend.history.list(unique_name, limit=100) == list(reversed(many))
