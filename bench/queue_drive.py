"""A phase of a cycle driven as a deployment drives it: a timer sweep, then the fan-out queue's trigger for
every message the engine scheduled — the targets the sweep paced past its horizon and the takes a budget
refused. ``bench.cost_per_cycle --drive queue`` (the default) drives each phase so; phase 2 also starts with
a sweep, because in a deployment the next timer tick finds the drain's end (the runner schedules no message
for it).

Why not sweep again every second until nothing is deferred (``--drive sweep``, the earlier benchmark): the
timer runs every 15 minutes (ROTATION_SCHEDULE), so in a deployment a deferred target comes back through its
queue message, not through another sweep; sweeping every second re-read every target's state once per
sweep, a cost no deployment pays.

``QueuePump`` stands for the Functions host's queue listener (host.json ``extensions.queues``): it receives
up to ``batchSize`` visible messages whenever no more than ``newBatchThreshold`` invocations are running,
runs ``triggers.queue_handler.handle_queue_message`` — the function's own code — for each on a thread of
its own, and deletes the message when the invocation returns. Receiving and deleting are the host's work,
not the worker's: they run on the pump's thread, whose CPU (``time.thread_time``) and requests the
benchmark leaves out of the engine's. An invocation that raises ends the drive with its error (the host
would retry it; a benchmark round must not fail).
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.storage.queue import QueueClient, TextBase64DecodePolicy

from triggers.queue_handler import handle_queue_message
from triggers.runtime import Runtime

HOST_JSON = Path(__file__).resolve().parents[1] / "host.json"
POLL_SECONDS = 0.05  # the host backs off to maxPollingInterval when idle; the bench keeps up instead


@dataclass
class Drive:
    """What driving one round cost outside the engine, and how many invocations it made."""

    pump_cpu_seconds: float
    pump_requests: int
    invocations: int


def host_queue_settings() -> tuple[int, int]:
    queues = json.loads(HOST_JSON.read_text())["extensions"]["queues"]
    return int(queues["batchSize"]), int(queues["newBatchThreshold"])


class QueuePump:
    def __init__(self, connection_string: str, queue_name: str, runtime: Runtime) -> None:
        self.requests = 0  # the pump's own, counted by the pipeline's hook on each request it sends
        self.client = QueueClient.from_connection_string(
            connection_string, queue_name, message_decode_policy=TextBase64DecodePolicy(),
            raw_request_hook=self._sent,
        )
        self.runtime = runtime
        self.batch, self.threshold = host_queue_settings()

    def clear(self) -> None:
        self.client.clear_messages()

    def drain(self, deadline_seconds: float = 600) -> Drive:
        """Run the queue's invocations until it holds no message (visible or not) and none is running."""
        outcome: list[Drive] = []
        failures: list[BaseException] = []
        thread = threading.Thread(
            target=self._serve, args=(deadline_seconds, outcome, failures), name="bench-host"
        )
        thread.start()
        thread.join()
        if failures:
            raise failures[0]
        return outcome[0]

    def _serve(self, deadline: float, outcome: list[Drive], failures: list[BaseException]) -> None:
        cpu = time.thread_time()
        running: set[Future[None]] = set()
        finished: list[Any] = []  # messages whose invocation returned; this thread deletes them
        lock = threading.Lock()
        requests, invocations = self.requests, 0
        begun = time.monotonic()
        with ThreadPoolExecutor(self.batch + self.threshold, thread_name_prefix="queue-rotate") as pool:
            try:
                while True:
                    with lock:
                        done, finished[:] = list(finished), []
                    for message in done:
                        self.client.delete_message(message)
                    for future in [f for f in running if f.done()]:
                        if (error := future.exception()) is not None:
                            raise RuntimeError(f"a queue invocation failed: {error!r}") from error
                        running.discard(future)
                    received: list[Any] = []
                    if len(running) <= self.threshold:
                        received = list(self.client.receive_messages(
                            messages_per_page=self.batch, max_messages=self.batch, visibility_timeout=600))
                    for message in received:
                        invocations += 1
                        running.add(pool.submit(self._invoke, message, finished, lock))
                    if not received and not running and not done:
                        if self.client.get_queue_properties().approximate_message_count == 0:
                            break
                    if time.monotonic() - begun > deadline:
                        raise RuntimeError(f"the queue still held messages after {deadline} s")
                    if not received:
                        time.sleep(POLL_SECONDS)  # the benchmark's host polls; the engine never sleeps (I6)
            except BaseException as error:
                failures.append(error)
        outcome.append(Drive(time.thread_time() - cpu, self.requests - requests, invocations))

    def _sent(self, request: Any) -> None:
        self.requests += 1

    def _invoke(self, message: Any, finished: list[Any], lock: threading.Lock) -> None:
        body = str(message.content).encode()
        trigger = func.QueueMessage(id=message.id, body=body, pop_receipt=message.pop_receipt)
        handle_queue_message(trigger, self.runtime)
        with lock:
            finished.append(message)
