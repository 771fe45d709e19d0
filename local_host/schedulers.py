"""The host's non-HTTP triggers: the timer on its NCRONTAB schedule, and the queue trigger polling Azurite,
with the host.json settings a Functions host applies (batch size, visibility timeout, max dequeue count,
poison queue), plus the queue output binding of any function."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.functions import meta
from azure.functions.queue import QueueMessageInConverter
from azure.functions.timer import TimerRequest
from azure.storage.queue import BinaryBase64DecodePolicy, BinaryBase64EncodePolicy, QueueClient
from croniter import croniter

from local_host.bindings import FunctionSpec, Output, resolve

logger = logging.getLogger("local_host")
Invoke = Callable[[FunctionSpec, dict[str, Any]], Any]
# How late a timer invocation may start before the host flags it past due.
PAST_DUE_AFTER = timedelta(seconds=1)
# Polling interval for an empty queue grows to this. The host's default maxPollingInterval is 1 minute; a
# local operator wants to see a message picked up within seconds.
MAX_POLL_SECONDS = 2.0


def queue_client(connection: str, name: str) -> QueueClient:
    """A queue client with the host's default message encoding (base64, host.json queues.messageEncoding)."""
    client = QueueClient.from_connection_string(
        connection,
        name,
        message_encode_policy=BinaryBase64EncodePolicy(),
        message_decode_policy=BinaryBase64DecodePolicy(),
    )
    try:
        client.create_queue()
    except ResourceExistsError:
        pass
    return client


class Outputs:
    """Writes what a function put in its queue output bindings, after it returned (as the host does)."""

    def __init__(self, settings: dict[str, str]) -> None:
        self.settings = settings

    def arguments(self, spec: FunctionSpec) -> dict[str, Output]:
        return {str(b["name"]): Output() for b in spec.outputs}

    def flush(self, spec: FunctionSpec, arguments: dict[str, Any]) -> None:
        for binding in spec.outputs:
            value = arguments[str(binding["name"])].get()
            if value is None or binding["type"] != "queue":
                continue
            client = queue_client(
                self.settings[str(binding["connection"])], resolve(str(binding["queueName"]))
            )
            with client:
                for message in value if isinstance(value, list) else [value]:
                    client.send_message(message.encode() if isinstance(message, str) else bytes(message))


class TimerTrigger(threading.Thread):
    def __init__(self, spec: FunctionSpec, invoke: Invoke, outputs: Outputs, stop: threading.Event) -> None:
        super().__init__(name=f"timer-{spec.name}", daemon=True)
        self.spec, self.invoke, self.outputs, self.stop = spec, invoke, outputs, stop
        self.schedule = resolve(str(spec.trigger["schedule"]))
        fields = len(self.schedule.split())
        if fields not in (5, 6):
            raise ValueError(f"{spec.name}: schedule {self.schedule!r} is not an NCRONTAB expression")
        # NCRONTAB puts seconds first (6 fields); croniter takes them first when told so.
        self.cron = croniter(self.schedule, datetime.now(UTC), second_at_beginning=fields == 6)

    def next_run(self) -> datetime:
        value: datetime = self.cron.get_next(datetime)
        return value

    def run(self) -> None:
        due = self.next_run()
        while not self.stop.wait(max(0.0, (due - datetime.now(UTC)).total_seconds())):
            late = datetime.now(UTC) - due
            arguments: dict[str, Any] = {
                str(self.spec.trigger["name"]): TimerRequest(past_due=late > PAST_DUE_AFTER)
            }
            arguments.update(self.outputs.arguments(self.spec))
            try:
                self.invoke(self.spec, arguments)
                self.outputs.flush(self.spec, arguments)
            except Exception:  # logged by the invoker; timers are never retried, the next schedule runs
                logger.debug("local_host: %s run failed", self.spec.name)
            due = self.next_run()
            while due <= datetime.now(UTC):  # one run at a time; skipped occurrences are not replayed
                due = self.next_run()


class QueueTrigger(threading.Thread):
    def __init__(
        self,
        spec: FunctionSpec,
        invoke: Invoke,
        outputs: Outputs,
        settings: dict[str, str],
        host_queues: dict[str, Any],
        stop: threading.Event,
    ) -> None:
        super().__init__(name=f"queue-{spec.name}", daemon=True)
        self.spec, self.invoke, self.outputs, self.stop = spec, invoke, outputs, stop
        self.name_of_queue = resolve(str(spec.trigger["queueName"]))
        self.client = queue_client(settings[str(spec.trigger["connection"])], self.name_of_queue)
        self.poison = queue_client(settings[str(spec.trigger["connection"])], f"{self.name_of_queue}-poison")
        self.batch = int(host_queues.get("batchSize", 16))
        self.max_dequeue = int(host_queues.get("maxDequeueCount", 5))
        self.retry_after = _timespan(str(host_queues.get("visibilityTimeout", "00:00:00")))

    def run(self) -> None:
        wait = 0.1
        with ThreadPoolExecutor(self.batch, thread_name_prefix=f"queue-{self.spec.name}") as pool:
            while not self.stop.is_set():
                try:
                    # Invisible for 10 minutes while it runs (the host renews its lease; nothing here takes
                    # that long), then deleted, or made visible again after visibilityTimeout.
                    messages = list(
                        self.client.receive_messages(max_messages=self.batch, visibility_timeout=600)
                    )
                except Exception:
                    messages = []
                if not messages:
                    self.stop.wait(wait)
                    wait = min(MAX_POLL_SECONDS, wait * 2)
                    continue
                wait = 0.1
                list(pool.map(self.handle, messages))

    def handle(self, message: Any) -> None:
        metadata = {
            "Id": meta.Datum(message.id, "string"),
            "DequeueCount": meta.Datum(str(message.dequeue_count), "json"),
            "PopReceipt": meta.Datum(message.pop_receipt, "string"),
        }
        trigger = QueueMessageInConverter.decode(
            meta.Datum(bytes(message.content), "bytes"), trigger_metadata=metadata
        )
        arguments: dict[str, Any] = {
            str(self.spec.trigger["name"]): trigger,
            **self.outputs.arguments(self.spec),
        }
        try:
            self.invoke(self.spec, arguments)
            self.outputs.flush(self.spec, arguments)
        except Exception:
            if message.dequeue_count >= self.max_dequeue:
                self.poison.send_message(bytes(message.content))
                self.client.delete_message(message)
            else:
                self.client.update_message(message, visibility_timeout=self.retry_after)
            return
        self.client.delete_message(message)


def _timespan(text: str) -> int:
    hours, minutes, seconds = (int(float(part)) for part in text.split(":"))
    return hours * 3600 + minutes * 60 + seconds
