"""Table Storage adapters (azure-data-tables): target state with ETag compare-and-swap, and the
append-only history. Permission: "Storage Table Data Contributor" on the storage account (or a
connection string — Azurite locally)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, UpdateMode

from rotation.errors import StateConflict
from rotation.model import HistoryRecord, Phase, Slot, TargetState, VersionedState
from rotation.ports import HistoryStore, StateStore
from shared.azure.errors import translate

STATE_ROW = "state"
_DATETIME_FIELDS = (
    "due_at", "cycle_started_at", "swapped_at", "drain_until", "verify_deadline", "next_attempt_at",
    "last_error_at", "last_rotated_at", "drift_checked_at", "lease_expires_at", "inactive_protected_until",
    "consumers_check_at", "consumers_refreshed_at", "drain_held_since",
)  # fmt: skip
_OTHER_FIELDS = (
    "cycle_id", "cycle_trigger", "cycle_requester", "cycle_reason", "emergency", "cycle_drain_seconds",
    "drain_seconds", "attempts", "last_error", "cycles_completed", "endpoint", "kind", "lease_owner",
    "pointer_version", "active_version",
    # added later: entities written before them read back as None (the engine then asks ARM)
    "location", "custom_subdomain",
    "consumers_waiting", "drain_released_by", "drain_release_reason", "drain_ended_by",
)  # fmt: skip


class _Table:
    """Writes create the table on first use (once per process); reads never create anything: a table
    that does not exist yet simply holds no rows (``status`` on a fresh install changes nothing)."""

    def __init__(self, client: TableClient) -> None:
        self.client = client
        self.endpoint = f"{client.url.rstrip('/')}/{client.table_name}"
        self._ready = False
        self._lock = threading.Lock()

    def ready(self) -> TableClient:
        if not self._ready:
            with self._lock:
                if not self._ready:
                    try:
                        self.client.create_table()
                    except ResourceExistsError:
                        pass
                    except (AzureError, OSError) as error:
                        raise self.failure(error, "table.create_table") from None
                    self._ready = True
        return self.client

    def failure(self, error: AzureError | OSError, operation: str) -> Exception:
        return translate(error, operation, self.endpoint)


def _to_entity(target_key: str, state: TargetState) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": target_key,
        "RowKey": STATE_ROW,
        "target_id": state.target_id,
        "phase": state.phase.value,
        "active_slot": state.active_slot.value if state.active_slot else None,
    }
    for name in _DATETIME_FIELDS:
        value = getattr(state, name)
        entity[name] = value.astimezone(UTC).isoformat() if value else None
    for name in _OTHER_FIELDS:
        entity[name] = getattr(state, name)
    # Table Storage has no null: a property left out is removed by a REPLACE update.
    return {k: v for k, v in entity.items() if v is not None}


def _from_entity(entity: Any) -> TargetState:
    values: dict[str, Any] = {
        name: entity.get(name) for name in _OTHER_FIELDS if entity.get(name) is not None
    }
    for name in _DATETIME_FIELDS:
        text = entity.get(name)
        values[name] = datetime.fromisoformat(text) if text else None
    if "attempts" in values:
        values["attempts"] = int(values["attempts"])
    if "cycles_completed" in values:
        values["cycles_completed"] = int(values["cycles_completed"])
    return TargetState(
        target_id=entity["target_id"],
        phase=Phase(entity["phase"]),
        active_slot=Slot.parse(entity.get("active_slot")),
        **values,
    )


def _etag(metadata: Any) -> str:
    return str(metadata["etag"])


class TableStateStore(StateStore):
    def __init__(self, client: TableClient) -> None:
        self.table = _Table(client)

    def get(self, target_key: str) -> VersionedState | None:
        try:
            entity = self.table.client.get_entity(target_key, STATE_ROW)
        except ResourceNotFoundError:
            return None
        except (AzureError, OSError) as error:
            raise self.table.failure(error, "table.get_entity") from None
        return VersionedState(_from_entity(entity), _etag(entity.metadata))

    def create(self, target_key: str, state: TargetState) -> VersionedState:
        try:
            metadata = self.table.ready().create_entity(_to_entity(target_key, state))
        except ResourceExistsError:
            raise StateConflict(f"state of {state.target_id} already exists") from None
        except (AzureError, OSError) as error:
            raise self.table.failure(error, "table.create_entity") from None
        return VersionedState(state, _etag(metadata))

    def replace(self, target_key: str, state: TargetState, etag: str) -> VersionedState:
        try:
            metadata = self.table.ready().update_entity(
                _to_entity(target_key, state),
                mode=UpdateMode.REPLACE,
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            raise StateConflict(f"state of {state.target_id} changed since it was read") from None
        except (AzureError, OSError) as error:
            if getattr(error, "status_code", None) == 412:
                raise StateConflict(f"state of {state.target_id} changed since it was read") from None
            raise self.table.failure(error, "table.update_entity") from None
        return VersionedState(state, _etag(metadata))

    def list_all(self) -> Iterator[tuple[str, VersionedState]]:
        try:
            for entity in self.table.client.query_entities("RowKey eq @row", parameters={"row": STATE_ROW}):
                yield entity["PartitionKey"], VersionedState(_from_entity(entity), _etag(entity.metadata))
        except ResourceNotFoundError:
            return  # no table yet: nothing adopted
        except (AzureError, OSError) as error:
            raise self.table.failure(error, "table.query_entities") from None


_MAX_MICROS = 10**19 - 1


TRANSACTION_LIMIT = 100  # operations per entity-group transaction (Table storage's limit)


class TableHistoryStore(HistoryStore):
    """Row keys sort newest first: inverted microseconds since the epoch, plus a random suffix."""

    def __init__(self, client: TableClient) -> None:
        self.table = _Table(client)

    def append(self, target_key: str, record: HistoryRecord) -> None:
        try:
            self.table.ready().create_entity(self._entity(target_key, record))
        except (AzureError, OSError) as error:
            raise self.table.failure(error, "table.create_entity") from None

    def append_all(self, target_key: str, records: Sequence[HistoryRecord]) -> None:
        """One entity-group transaction per 100 rows (they share the target's partition): a phase's rows
        cost one request instead of one each."""
        rows = [self._entity(target_key, record) for record in records]
        try:
            for start in range(0, len(rows), TRANSACTION_LIMIT):
                self.table.ready().submit_transaction(
                    [("create", row) for row in rows[start : start + TRANSACTION_LIMIT]]
                )
        except (AzureError, OSError) as error:
            raise self.table.failure(error, "table.submit_transaction") from None

    def _entity(self, target_key: str, record: HistoryRecord) -> dict[str, Any]:
        micros = int(record.at.timestamp() * 1_000_000)
        entity: dict[str, Any] = {
            "PartitionKey": target_key,
            "RowKey": f"{_MAX_MICROS - micros:019d}-{uuid.uuid4().hex[:8]}",
            "target": record.target,
            "at": record.at.astimezone(UTC).isoformat(),
            "step": record.step,
            "outcome": record.outcome,
            "trigger": record.trigger,
            "requester": record.requester,
            "reason": record.reason,
            "cycle": record.cycle,
            "slot": record.slot,
            "error": record.error,
            "duration_ms": record.duration_ms,
            "emergency": record.emergency,
        }
        return {k: v for k, v in entity.items() if v is not None}

    def list(self, target_key: str, limit: int = 20) -> list[HistoryRecord]:
        records: list[HistoryRecord] = []
        try:
            pages = self.table.client.query_entities(
                "PartitionKey eq @pk", parameters={"pk": target_key}, results_per_page=max(1, limit)
            )
            for entity in pages:
                records.append(HistoryRecord(
                    target=entity["target"], at=datetime.fromisoformat(entity["at"]), step=entity["step"],
                    outcome=entity["outcome"], trigger=entity.get("trigger", ""),
                    requester=entity.get("requester", ""), reason=entity.get("reason", ""),
                    cycle=entity.get("cycle"), slot=entity.get("slot"), error=entity.get("error"),
                    duration_ms=int(entity.get("duration_ms", 0)), emergency=bool(entity.get("emergency")),
                ))  # fmt: skip
                if len(records) >= limit:
                    break
        except ResourceNotFoundError:
            return []  # no table yet: nothing recorded
        except (AzureError, OSError) as error:
            raise self.table.failure(error, "table.query_entities") from None
        return records
