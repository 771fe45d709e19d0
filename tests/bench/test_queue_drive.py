"""The cost benchmark's stand-in for the Functions host's queue listener (bench/queue_drive.py), on Azurite:
it invokes the function's own queue handler once per message when the message becomes visible, deletes
it, stops only when the queue is empty, and keeps its own requests apart from the engine's."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from bench.queue_drive import QueuePump, host_queue_settings
from emulator.client.azurite import AzuriteProcess
from rotation.outcomes import TargetOutcome
from rotation.views import TargetResult
from shared.fanout import fanout_message
from triggers.runtime import Runtime


@dataclass
class RecordingService:
    """Only what ``handle_queue_message`` calls: the benchmark's host is under test here, not the engine."""

    fail_for: str = ""
    calls: list[tuple[str, float]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def advance_target(self, target: str, trigger: str = "queue") -> Any:
        if target == self.fail_for:
            raise RuntimeError("storage unreachable")
        with self.lock:
            self.calls.append((target, time.monotonic()))
        return TargetResult(target, TargetOutcome.ADVANCED, (trigger,))

    def advance_targets(self, names: Sequence[str], trigger: str = "queue") -> Any:
        return [self.advance_target(name, trigger) for name in names], []


def runtime_for(service: RecordingService) -> Runtime:
    return Runtime(settings=cast(Any, None), service=cast(Any, service))


def sender(azurite: AzuriteProcess, name: str) -> QueueClient:
    client = QueueClient.from_connection_string(
        azurite.connection_string, name, message_encode_policy=TextBase64EncodePolicy()
    )
    client.create_queue()
    return client


def test_every_message_is_invoked_once_when_visible_then_deleted(azurite: AzuriteProcess) -> None:
    name = f"drive{uuid.uuid4().hex[:8]}"
    queue = sender(azurite, name)
    service = RecordingService()
    pump = QueuePump(azurite.connection_string, name, runtime_for(service))
    now = [f"target-{i}" for i in range(20)]  # more than a batch: the pump fetches again
    for target in now:
        queue.send_message(fanout_message(target))
    queue.send_message(fanout_message("later"), visibility_timeout=2)
    begun = time.monotonic()
    drive = pump.drain(deadline_seconds=60)
    assert sorted(t for t, _ in service.calls) == sorted([*now, "later"])
    assert dict(service.calls)["later"] - begun >= 1.9  # not before its visibility delay
    assert drive.invocations == 21
    assert queue.get_queue_properties().approximate_message_count == 0  # each one deleted
    batch, _ = host_queue_settings()
    # its own requests: a receive per batch, a delete per message, the emptiness checks while it waits
    assert drive.pump_requests >= 21 + 21 // batch + 1
    assert drive.pump_cpu_seconds > 0


def test_a_failed_invocation_stops_the_drive_and_names_the_error(azurite: AzuriteProcess) -> None:
    name = f"drive{uuid.uuid4().hex[:8]}"
    queue = sender(azurite, name)
    pump = QueuePump(azurite.connection_string, name, runtime_for(RecordingService(fail_for="bad")))
    queue.send_message(fanout_message("bad"))
    with pytest.raises(RuntimeError, match="a queue invocation failed: RuntimeError\\('storage unreachable'"):
        pump.drain(deadline_seconds=60)
