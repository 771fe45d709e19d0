"""The Table adapter's history layout (issue 17): one insert per target and invocation, the invocation's
newest row readable as plain columns, and rows written one per entity by earlier versions still listed."""

from __future__ import annotations

import uuid

from azure.data.tables import TableServiceClient

from emulator.client.azurite import AzuriteProcess
from shared.azure.tables import TableHistoryStore

from .test_history_store import record


def test_one_invocations_rows_are_one_insert_and_old_single_row_entities_still_list(
    azurite: AzuriteProcess,
) -> None:
    table = TableServiceClient.from_connection_string(azurite.connection_string).get_table_client(
        "history" + uuid.uuid4().hex[:8]
    )
    sent: list[str] = []
    for name in ("create_entity", "submit_transaction", "upsert_entity"):
        original = getattr(table, name)

        def counted(
            *args: object, _name: str = name, _original: object = original, **kwargs: object
        ) -> object:
            sent.append(_name)
            return _original(*args, **kwargs)  # type: ignore[operator]

        setattr(table, name, counted)
    history = TableHistoryStore(table)
    rows = [record(minutes, step=f"s{minutes}", cycle="c1") for minutes in range(4)]
    history.append_all("t1", rows)
    assert sent == ["create_entity"]
    [entity] = list(table.query_entities("PartitionKey eq 't1'"))
    assert entity["step"] == "s3" and entity["cycle"] == "c1"  # the newest row, as plain columns
    # an entity in the layout before (one row per entity, no ``records``) reads back unchanged
    table.create_entity({
        "PartitionKey": "t1", "RowKey": "0000000000000000000-old", "target": "/subscriptions/s/acc",
        "at": record(99).at.isoformat(), "step": "old", "outcome": "succeeded", "trigger": "timer",
        "duration_ms": 7,
    })  # fmt: skip
    assert [r.step for r in history.list("t1")] == ["old", "s3", "s2", "s1", "s0"]
    assert history.list("t1", limit=1)[0].duration_ms == 7
