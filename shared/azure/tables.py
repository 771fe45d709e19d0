"""Table Storage adapters (azure-data-tables): target state with ETag compare-and-swap, and the
append-only history. Permission: "Storage Table Data Contributor" on the storage account (or a
connection string — Azurite locally)."""

from __future__ import annotations

import json
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
from shared.loop_greenlets import IoLock

STATE_ROW = "state"
CARRIED = "history_carried"  # the state entity's column of history rows not yet in the history table
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
        self._lock = IoLock()  # held across creating the table

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
    if state.history_carried:  # one string property: the engine keeps it under HISTORY_CARRY_CHARS
        entity[CARRIED] = json.dumps([record.to_fields() for record in state.history_carried])
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
    if entity.get(CARRIED):
        values["history_carried"] = tuple(HistoryRecord.from_fields(f) for f in json.loads(entity[CARRIED]))
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


# The rows of one cycle for a target (those the state entity carried plus the last invocation's:
# rotation/history_carry.py) are written as ONE entity: the newest row's columns (readable in any table
# browser as before) plus every row as JSON in ``records``. Why not an entity-group transaction: its
# multipart body is built and parsed with the ``email`` package and azure-core prepares its parts on a
# fresh thread pool — 5-7 ms of CPU per request against ~2 ms for one insert (docs/BENCHMARKS.md §7). A
# string property holds 64 KiB (32K UTF-16 characters): more rows are split over several entities.
PACK_CHARS = 30_000


class TableHistoryStore(HistoryStore):
    """Row keys sort newest first: inverted microseconds since the epoch (of the entity's newest row),
    plus a random suffix."""

    def __init__(self, client: TableClient) -> None:
        self.table = _Table(client)

    def append(self, target_key: str, record: HistoryRecord) -> None:
        self.append_all(target_key, [record])

    def append_all(self, target_key: str, records: Sequence[HistoryRecord]) -> None:
        """One insert (one per PACK_CHARS of rows)."""
        try:
            for pack in _packs([record.to_fields() for record in records]):
                self.table.ready().create_entity(_entity(target_key, pack))
        except (AzureError, OSError) as error:
            raise self.table.failure(error, "table.create_entity") from None

    def stored_since(self, target_key: str, since: datetime) -> list[HistoryRecord]:
        """Every row of the entities whose newest row is at or after ``since``: one range query on the row
        key (newest first), so only what was written since that time is read."""
        micros = int(since.timestamp() * 1_000_000)
        upto = f"{_MAX_MICROS - micros:019d}~"  # "~" sorts after the "-suffix" of every row key
        try:
            entities = self.table.client.query_entities(
                "PartitionKey eq @pk and RowKey le @upto", parameters={"pk": target_key, "upto": upto}
            )
            return [record for entity in entities for record in _rows(entity)]
        except ResourceNotFoundError:
            return []
        except (AzureError, OSError) as error:
            raise self.table.failure(error, "table.query_entities") from None

    def list(self, target_key: str, limit: int = 20) -> list[HistoryRecord]:
        records: list[HistoryRecord] = []
        try:
            pages = self.table.client.query_entities(
                "PartitionKey eq @pk", parameters={"pk": target_key}, results_per_page=max(1, limit)
            )
            for entity in pages:
                newest = datetime.fromisoformat(entity["at"])
                # Entities sort by their newest row; one entity's rows may be older than the next one's
                # newest, so stop only once ``limit`` rows are at least as new as anything still unread.
                if len(records) >= limit and sorted(r.at for r in records)[-limit] >= newest:
                    break
                records.extend(_rows(entity))
        except ResourceNotFoundError:
            return []  # no table yet: nothing recorded
        except (AzureError, OSError) as error:
            raise self.table.failure(error, "table.query_entities") from None
        records.sort(key=lambda r: r.at, reverse=True)
        return records[:limit]


def _rows(entity: Any) -> list[HistoryRecord]:
    """The rows one history entity holds: its ``records``, or the entity itself (one row)."""
    packed = entity.get("records")
    return [HistoryRecord.from_fields(f) for f in (json.loads(packed) if packed else [entity])]


def _packs(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    pack: list[dict[str, Any]] = []
    size = 0
    for row in rows:
        length = len(json.dumps(row)) + 1
        if pack and size + length > PACK_CHARS:
            yield pack
            pack, size = [], 0
        pack.append(row)
        size += length
    if pack:
        yield pack


def _entity(target_key: str, pack: list[dict[str, Any]]) -> dict[str, Any]:
    newest = max(pack, key=lambda row: datetime.fromisoformat(row["at"]))
    micros = int(datetime.fromisoformat(newest["at"]).timestamp() * 1_000_000)
    entity = {
        "PartitionKey": target_key,
        "RowKey": f"{_MAX_MICROS - micros:019d}-{uuid.uuid4().hex[:8]}",
        **newest,
    }
    if len(pack) > 1:
        entity["records"] = json.dumps(pack)
    return entity
