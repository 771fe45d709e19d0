"""Data-plane verification probe: one cheap request, authenticated with the key, chosen per kind and
endpoint shape by ``shared/azure/probe_table.py`` (or the target's ``probe`` override), and the verdict its
answer gives.

Redirects are not followed (the key must not travel elsewhere). TLS is always verified (REQUESTS_CA_BUNDLE
is honoured, which is how the emulator's CA is trusted). Nothing here logs: the URL and headers are safe,
but a response body (an issued token) is not worth keeping.
"""

from __future__ import annotations

from collections.abc import Callable

import requests
import urllib3
from tenacity import retry, retry_if_exception_type, stop_after_attempt

from rotation.model import ProbeOverride, SecretValue
from rotation.ports import DataPlane, KeyProbe, ProbeResult
from shared.azure.probe_table import ProbeRequest, probe_request, verdict

MAX_BODY_BYTES = 8192  # an error envelope; a models list may be longer, but 2xx needs no body


class ProbeConnectionFailed(Exception):
    """No connection to the data plane (another transport's "connection refused", DNS, TLS)."""


class ProbeNoAnswer(Exception):
    """Connected, but no complete answer (another transport's timeout or reset)."""


# (method, url, headers, body, (connect, read) timeouts) -> (status, body up to MAX_BODY_BYTES unless 2xx,
# headers); raises ProbeConnectionFailed or ProbeNoAnswer. The asynchronous path's is
# ``shared.aio_clients.AsyncClients.probe_sender``.
ProbeSender = Callable[
    [str, str, dict[str, str], bytes | None, tuple[float, float]], tuple[int, bytes, dict[str, str]]
]


# What a probe that got no verdict raises, on either path: inconclusive, retried by a later invocation.
UNANSWERED = (requests.RequestException, urllib3.exceptions.HTTPError, ProbeConnectionFailed, ProbeNoAnswer)


class DataPlaneProbe(KeyProbe):
    def __init__(
        self,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = (5.0, 10.0),
        sender: ProbeSender | None = None,
    ):
        self.session = session or requests.Session()
        self.timeout = timeout
        self.sender = sender

    def probe(
        self, plane: DataPlane, key: SecretValue, override: ProbeOverride | None = None
    ) -> ProbeResult:
        request = probe_request(plane, override)
        base = plane.endpoint if plane.endpoint.endswith("/") else plane.endpoint + "/"
        headers = {**dict(request.headers), request.key_header: key.reveal()}
        if request.content_type:
            headers["Content-Type"] = request.content_type
        try:
            status, body, answer_headers = self._send(request, base + request.path, headers)
        except UNANSWERED:
            # urllib3's own errors too: the composition root's session turns urllib3's retries off, and
            # then urllib3 raises the connection error itself instead of requests' wrapper
            return ProbeResult.INCONCLUSIVE
        return verdict(status, body, answer_headers)

    # One immediate retry of a dropped connection (no wait: nothing here sleeps); anything slower is left
    # to the next invocation via the stored verification retry.
    @retry(
        retry=retry_if_exception_type(
            (requests.ConnectionError, urllib3.exceptions.NewConnectionError, ProbeConnectionFailed)
        ),
        stop=stop_after_attempt(2),
        reraise=True,
    )
    def _send(
        self, request: ProbeRequest, url: str, headers: dict[str, str]
    ) -> tuple[int, bytes, dict[str, str]]:
        if self.sender is not None:
            return self.sender(request.method, url, headers, request.body, self.timeout)
        with self.session.request(
            request.method,
            url,
            headers=headers,
            data=request.body,
            timeout=self.timeout,
            allow_redirects=False,
            stream=True,
        ) as response:
            ok = 200 <= response.status_code < 300
            body = b"" if ok else response.raw.read(MAX_BODY_BYTES, decode_content=True)
            return response.status_code, body, dict(response.headers)
