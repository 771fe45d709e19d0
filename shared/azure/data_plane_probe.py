"""Data-plane verification probe: one cheap read-only request authenticated with the key.

- OpenAI / AIServices: ``GET {endpoint}openai/models?api-version=...`` with ``api-key``.
- every other kind: ``GET {endpoint}`` with ``Ocp-Apim-Subscription-Key`` — the Cognitive Services gateway
  checks the key before routing, so a bad key answers 401 while a good one gets past it (404 or similar).

401/403 → REFUSED; 5xx, timeouts and connection errors → INCONCLUSIVE (try later); any other answer →
ACCEPTED. Redirects are not followed (the key must not travel elsewhere). TLS is always verified
(REQUESTS_CA_BUNDLE is honoured, which is how the emulator's CA is trusted).
"""

from __future__ import annotations

import requests
from tenacity import retry, retry_if_exception_type, stop_after_attempt

from rotation.model import SecretValue
from rotation.ports import KeyProbe, ProbeResult

OPENAI_KINDS = frozenset({"openai", "aiservices"})
OPENAI_API_VERSION = "2024-10-21"


class DataPlaneProbe(KeyProbe):
    def __init__(self, session: requests.Session | None = None, timeout: tuple[float, float] = (5.0, 10.0)):
        self.session = session or requests.Session()
        self.timeout = timeout

    def probe(self, endpoint: str, kind: str, key: SecretValue) -> ProbeResult:
        base = endpoint if endpoint.endswith("/") else endpoint + "/"
        if kind.lower() in OPENAI_KINDS:
            url, header = f"{base}openai/models?api-version={OPENAI_API_VERSION}", "api-key"
        else:
            url, header = base, "Ocp-Apim-Subscription-Key"
        try:
            status = self._get(url, {header: key.reveal()})
        except requests.RequestException:
            return ProbeResult.INCONCLUSIVE
        if status in (401, 403):
            return ProbeResult.REFUSED
        if status >= 500:
            return ProbeResult.INCONCLUSIVE
        return ProbeResult.ACCEPTED

    # One immediate retry of a dropped connection (no wait: nothing here sleeps); anything slower is left
    # to the next invocation via the stored verification retry.
    @retry(retry=retry_if_exception_type(requests.ConnectionError), stop=stop_after_attempt(2), reraise=True)
    def _get(self, url: str, headers: dict[str, str]) -> int:
        with self.session.get(url, headers=headers, timeout=self.timeout, allow_redirects=False) as response:
            return response.status_code
