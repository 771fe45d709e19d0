"""Azurite (Microsoft's storage emulator) tables and queues on free loopback ports, for tests and demos."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from emulator.client.child_process import stop_process

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = REPO_ROOT / "node_modules" / ".bin"
ACCOUNT_NAME = "devstoreaccount1"
# Azurite's published well-known development key (not a secret).
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
STARTED = re.compile(r"service (?:is )?successfully (?:started|listens|listening)")


def _free_port() -> int:
    # Azurite accepts port 0 but then never reveals the port it got, so pick one; start() retries if a
    # racing process took it in between.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class AzuriteError(RuntimeError):
    pass


class _Service:
    def __init__(self, executable: str, host_flag: str, port_flag: str) -> None:
        path = BIN / executable
        if not path.exists():
            raise AzuriteError(f"{path} is missing: run `npm ci` (make deps) first")
        self.base_command = [
            str(path),
            host_flag,
            "127.0.0.1",
            "--inMemoryPersistence",
            "--loose",
            "--skipApiVersionCheck",
            "--silent",
            "--disableProductStyleUrl",
        ]
        self.port_flag = port_flag
        self.process: subprocess.Popen[str] | None = None
        self.url: str | None = None
        self.output: list[str] = []

    def start(self, timeout: float, attempts: int = 3) -> None:
        for attempt in range(attempts):
            try:
                self._start_once(timeout)
                return
            except AzuriteError:
                if attempt == attempts - 1:
                    raise

    def _start_once(self, timeout: float) -> None:
        port = _free_port()
        self.command = [*self.base_command, self.port_flag, str(port)]
        self.output = []
        self.process = subprocess.Popen(
            self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO_ROOT
        )
        found = threading.Event()

        def read() -> None:
            assert self.process is not None and self.process.stdout is not None
            for line in self.process.stdout:
                self.output.append(line.rstrip())
                if STARTED.search(line) and not found.is_set():
                    self.url = f"http://127.0.0.1:{port}"
                    found.set()
            found.set()

        threading.Thread(target=read, daemon=True).start()
        if not found.wait(timeout) or self.url is None:
            self.stop()
            raise AzuriteError(f"{self.command[0]} did not start: " + "\n".join(self.output[-20:]))

    def request_stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            # In-memory only: nothing to flush, and a graceful close waits for idle keep-alive clients.
            self.process.send_signal(signal.SIGINT)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        stop_process(process, signal.SIGINT, grace_seconds=2)


class AzuriteProcess:
    """Azurite table + queue services (in memory) on free ports; a context manager."""

    def __init__(self, startup_timeout: float = 30.0) -> None:
        self.startup_timeout = startup_timeout
        self.table = _Service("azurite-table", "--tableHost", "--tablePort")
        self.queue = _Service("azurite-queue", "--queueHost", "--queuePort")

    def start(self) -> AzuriteProcess:
        try:
            self.table.start(self.startup_timeout)
            self.queue.start(self.startup_timeout)
            self.wait_until_serving()
        except Exception:
            self.stop()
            raise
        return self

    def restart_queue(self) -> None:
        """A fresh queue service on a new port (``connection_string`` changes): Azurite's queue service runs
        a mark-and-sweep of every message extent it ever stored each 60 s (QueueGCManager, interval not
        configurable), stopping every client for seconds once thousands of messages went through it —
        a pause Azure Queue Storage does not have. A benchmark restarts it between phases."""
        self.queue.stop()
        self.queue.start(self.startup_timeout)
        self.wait_until_serving()

    def stop(self) -> None:
        self.table.request_stop()
        self.queue.request_stop()  # both wind down at once
        self.table.stop()
        self.queue.stop()

    def __enter__(self) -> AzuriteProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def table_endpoint(self) -> str:
        return f"{self.table.url}/{ACCOUNT_NAME}"

    @property
    def queue_endpoint(self) -> str:
        return f"{self.queue.url}/{ACCOUNT_NAME}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
            f"TableEndpoint={self.table_endpoint};QueueEndpoint={self.queue_endpoint};"
        )

    def wait_until_serving(self) -> None:
        """Both ports accept connections (Azurite prints its banner slightly before it is ready)."""
        for url in (self.table.url, self.queue.url):
            parts = urlsplit(url or "")
            deadline = time.monotonic() + self.startup_timeout
            while True:
                try:
                    with socket.create_connection(
                        (parts.hostname or "127.0.0.1", parts.port or 0), timeout=1
                    ):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
