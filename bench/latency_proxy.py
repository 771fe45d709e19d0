"""A TCP proxy that holds what a client sends for a fixed time before passing it on: Azure Storage's latency
in front of Azurite, which has no latency setting (issue 17 asks for Table latencies "in the tens of ms").

Each chunk the client sends is forwarded ``delay`` seconds after it arrived, in order (a chunk that arrived
while an earlier one was held is not held longer for it); the server's answers pass straight back. For HTTP
requests one at a time on a connection — what azure-core sends — that is ``delay`` per request.

Run as its own process (``python -m bench.latency_proxy --delay 0.01 UPSTREAM_PORT…``), so its CPU is not
the client's: it prints one line ``LISTEN_PORT UPSTREAM_PORT`` per upstream when it is ready, on 127.0.0.1
only, and runs until its standard input closes (the benchmark's process ending stops it too).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
from asyncio import StreamReader, StreamWriter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from emulator.client.azurite import AzuriteProcess

LOOPBACK = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent


async def _held(reader: StreamReader, writer: StreamWriter, delay: float) -> None:
    loop = asyncio.get_running_loop()
    chunks: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def arrive() -> None:
        while chunk := await reader.read(65536):
            chunks.put_nowait((loop.time() + delay, chunk))
        chunks.put_nowait((loop.time() + delay, b""))

    arriving = asyncio.create_task(arrive())
    try:
        while True:
            due, chunk = await chunks.get()
            if (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)
            if not chunk:
                break
            writer.write(chunk)
            await writer.drain()
    finally:
        arriving.cancel()
        writer.close()


async def _passed(reader: StreamReader, writer: StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    finally:
        writer.close()


async def serve(upstreams: Sequence[int], delay: float) -> None:
    async def proxy_to(port: int, client_reader: StreamReader, client_writer: StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(LOOPBACK, port)
        except OSError:
            client_writer.close()
            return
        try:
            await asyncio.gather(
                _held(client_reader, server_writer, delay),
                _passed(server_reader, client_writer),
                return_exceptions=True,
            )
        except asyncio.CancelledError:  # shutting down: ended, not cancelled (3.11's streams log a cancel)
            client_writer.close()
            server_writer.close()

    servers = []
    for port in upstreams:
        server = await asyncio.start_server(partial(proxy_to, port), LOOPBACK, 0)
        servers.append(server)
        print(server.sockets[0].getsockname()[1], port, flush=True)
    # until the parent closes our standard input
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for server in servers:
        server.close()


@dataclass(frozen=True)
class HeldStorage:
    """Azurite as the engine reaches it: ``connection_string`` names the proxy's ports (Table, Queue), so
    requests to ``table_port`` are the engine's Table calls; ``pid`` is the proxy's process (None: none)."""

    connection_string: str
    table_port: int
    pid: int | None


def _port(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1].split("/", 1)[0])


@contextmanager
def held_storage(azurite: AzuriteProcess, delay: float) -> Iterator[HeldStorage]:
    """Azurite's Table and Queue endpoints behind a proxy holding each request ``delay`` seconds (none
    when ``delay`` is 0); the proxy stops when the block ends."""
    table, queue = _port(azurite.table_endpoint), _port(azurite.queue_endpoint)
    if delay <= 0:
        yield HeldStorage(azurite.connection_string, table, None)
        return
    proxy = subprocess.Popen(
        [sys.executable, "-m", "bench.latency_proxy", "--delay", str(delay), str(table), str(queue)],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proxy.stdout is not None
        listening = {int(up): int(port) for port, up in (proxy.stdout.readline().split() for _ in range(2))}
        connection_string = azurite.connection_string
        for endpoint, port in ((azurite.table_endpoint, table), (azurite.queue_endpoint, queue)):
            held = endpoint.replace(f":{port}/", f":{listening[port]}/")
            connection_string = connection_string.replace(endpoint, held)
        yield HeldStorage(connection_string, listening[table], proxy.pid)
    finally:
        assert proxy.stdin is not None
        proxy.stdin.close()
        try:
            proxy.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proxy.kill()
            proxy.wait()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.latency_proxy", description=__doc__.split("\n")[0])
    parser.add_argument("--delay", type=float, required=True, help="seconds each request is held")
    parser.add_argument("upstreams", type=int, nargs="+", help="ports on 127.0.0.1 to put the delay before")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.upstreams, args.delay))


if __name__ == "__main__":
    main()
