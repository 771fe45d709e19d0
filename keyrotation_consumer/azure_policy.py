"""azure-core integration: a pipeline policy that sets the key header and retries once on 401."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import HTTPPolicy

if TYPE_CHECKING:
    from .rotating_key import RotatingKey


class RotatingKeyPolicy(HTTPPolicy[Any, Any]):
    """Use in ``PipelineClient(policies=[...])`` or an SDK client's ``per_retry_policies=[...]``.

    Per-retry policies run after the client's own authentication policy, so this header wins over a
    static ``AzureKeyCredential``. azure-core's retry policy does not retry 401s; this one does, once,
    after the cache re-read Key Vault. Synchronous pipelines only.
    """

    def __init__(self, rotating_key: RotatingKey, header: str) -> None:
        super().__init__()
        if not header:
            raise ValueError("header must be a non-empty header name")
        self._rotating_key = rotating_key
        self._header = header

    def send(self, request: PipelineRequest[Any]) -> PipelineResponse[Any, Any]:
        used = self._rotating_key.current()
        request.http_request.headers[self._header] = used.value
        response = self.next.send(request)
        if response.http_response.status_code != 401:
            return response
        replacement = self._rotating_key.refresh_after_unauthorized(used)
        if replacement is None:
            return response
        request.http_request.headers[self._header] = replacement.value
        return self.next.send(request)

    def __repr__(self) -> str:
        return f"RotatingKeyPolicy(header={self._header!r}, key={self._rotating_key!r})"
