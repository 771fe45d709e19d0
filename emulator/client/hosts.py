"""Reach the emulator's per-account host names (``python -m emulator --account-hosts``) without DNS.

``{subdomain}.cognitiveservices.emulator.test`` names no real host (``.test`` is reserved, RFC 6761) and
this machine has no resolver for invented names, so the process that talks to the emulator maps the
suffix to 127.0.0.1 itself — the stand-in for DNS. Everything else resolves as before; traffic still goes
only to the loopback address. TLS is unchanged: the client sends the account's name (SNI, Host) and checks
it against the emulator's certificate, which covers ``*.{suffix}``.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from emulator.hosts import ACCOUNT_HOST_SUFFIX

LOOPBACK = "127.0.0.1"


@contextmanager
def account_hosts_on_loopback(suffix: str = ACCOUNT_HOST_SUFFIX) -> Iterator[None]:
    """While inside, ``socket.getaddrinfo`` answers 127.0.0.1 for ``*.{suffix}`` (this process only)."""
    original = socket.getaddrinfo
    tail = "." + suffix

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if isinstance(name, str) and name.lower().rstrip(".").endswith(tail):
            host = LOOPBACK
        return original(host, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo
    try:
        yield
    finally:
        socket.getaddrinfo = original
