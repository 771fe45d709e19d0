"""A local stand-in for the Functions host's Event Grid webhook (``/runtime/webhooks/eventgrid``).

The emulator posts Key Vault events here as Event Grid does (a JSON array per POST, retried until a 2xx).
Each event is handed to a callback — the ``key_vault_events`` handler — and any exception answers 500, so
the emulator redelivers it, as Event Grid would after a failed invocation.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

logger = logging.getLogger("demo.events")
EventCallback = Callable[[dict[str, Any]], None]


class EventReceiver:
    """``with EventReceiver() as receiver:`` — listens on a free loopback port; ``.url`` for the emulator."""

    def __init__(self) -> None:
        self.callback: EventCallback | None = None
        self.received = 0
        self.failed = 0
        self.last_dispatch = 0.0  # when the handler last started or finished an event (time.time())
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                try:
                    events = json.loads(self.rfile.read(length) or b"[]")
                    if not isinstance(events, list):
                        events = [events]
                    for event in events:
                        receiver.dispatch(event)
                    status = 200
                except Exception as error:  # the handler failed: Event Grid would retry the delivery
                    logger.warning("event delivery failed: %s", type(error).__name__)
                    with receiver._lock:
                        receiver.failed += 1
                    status = 500
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return  # keep the terminal for the demo's own output

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="event-receiver", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/runtime/webhooks/eventgrid"

    def dispatch(self, event: dict[str, Any]) -> None:
        with self._lock:
            self.received += 1
            callback = self.callback
            if callback is None:
                raise RuntimeError("no handler attached")
            self.last_dispatch = time.time()
            self._in_flight += 1
        try:
            callback(event)
        finally:
            with self._lock:
                self._in_flight -= 1
                self.last_dispatch = time.time()
                self._idle.notify_all()

    def detach(self, timeout: float = 30.0) -> bool:
        """From now on no event reaches the handler (each delivery answers 500, so the emulator would retry
        it). Returns once the deliveries being handled have finished: True if there were none."""
        with self._lock:
            self.callback = None
            idle = self._in_flight == 0
            self._idle.wait_for(lambda: self._in_flight == 0, timeout)
            return idle

    def __enter__(self) -> EventReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)
