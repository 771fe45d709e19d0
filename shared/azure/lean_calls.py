"""The cycle's hottest Azure calls on a plain azure-core pipeline (asynchronous path only): Key Vault's
secret read and write, ARM's ``regenerateKey`` and ``listKeys``, Table's entity insert, replace and read,
and Queue's Put Message (a deferral) — every request of a cycle but the probe (aiohttp's already).

Why: the SDKs' generated operations cost more CPU than the request itself. Measured on this project's
loop and transport, 16 at a time (docs/BENCHMARKS.md §7, sixth pass): a secret read through
``SecretClient.get_secret`` 0.64-0.98 ms, the same request through ``send_request`` on the same client
0.44-0.72 ms, through an ``AsyncPipelineClient`` with three policies 0.29-0.43 ms, and 15-20 % less again
on a bare ``AsyncPipeline`` with azure-core's transport request (seventh pass). What the SDK adds is
model (de)serialization, a request id (``uuid1``), a decode policy that parses the body once more, and
policies that do nothing here (proxy, redirects, tracing, logging kept quiet). What stays is what a call
needs: azure-core's retry (Retry-After, the absolute timeout), the bearer policy (ARM's challenge-aware
one for ARM), the user agent, and the process's transport; errors are azure-core's own classes, mapped as
the generated code maps them, so ``shared/azure/errors.py`` and the adapters are unchanged.

``LeanSecrets``, ``LeanArm`` and ``LeanTable`` stand in for the ``.aio`` clients behind
``BlockingClient``: the hot methods are here, with the same names and the attributes the adapters read;
everything else (listing versions, recovery, ``accounts.get`` and ``list``, creating tables, queries)
goes to the SDK client they wrap. Request and response shapes follow the REST specs at the SDKs' own
api-versions: Key Vault ``SetSecret``/``GetSecret`` (7.6), Cognitive Services
``Accounts_RegenerateKey``/``Accounts_ListKeys`` (2025-09-01), Table ``Insert Entity``/``Update
Entity``/``Query Entities`` by key (2019-02-02, properties typed as azure-data-tables types them).

Key Vault's token: the SDK's policy learns the scope from the vault's 401 challenge; here the scope is the
cloud's Key Vault audience (``key_vault_scope``), fixed up front, so a token is never requested for a
resource a challenge names (what ``verify_challenge_resource`` guards against) and the first request
already carries one. Table's: the table client's own credential — a token for the storage scope (the
deployed identity), or the account key of a connection string signed by azure-data-tables' own Shared Key
policy (imported from its ``_authentication`` module, pinned with the SDK in requirements.txt: the
canonical form of a signed request is the SDK's, not a copy of it).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import formatdate
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlparse
from xml.sax.saxutils import escape

from azure.core import MatchConditions
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ResourceNotModifiedError,
    map_error,
)
from azure.core.pipeline import AsyncPipeline, PipelineResponse
from azure.core.pipeline.policies import (
    AsyncBearerTokenCredentialPolicy,
    AsyncHTTPPolicy,
    AsyncRetryPolicy,
    SansIOHTTPPolicy,
    UserAgentPolicy,
)
from azure.core.pipeline.transport import HttpRequest
from azure.mgmt.core.policies import AsyncARMChallengeAuthenticationPolicy

KEY_VAULT_API_VERSION = "7.6"
COGNITIVE_SERVICES_API_VERSION = "2025-09-01"  # azure-mgmt-cognitiveservices 14.1's
USER_AGENT = "ai-key-rotation"
# As the generated operations map them (azure-keyvault-secrets, azure-mgmt-cognitiveservices).
_ERRORS: dict[int, type[HttpResponseError]] = {
    401: ClientAuthenticationError,
    404: ResourceNotFoundError,
    409: ResourceExistsError,
    304: ResourceNotModifiedError,
}
# Key Vault's audience per cloud, by the vaults' DNS suffix (Microsoft Learn, "Authentication, requests and
# responses" and the sovereign clouds' developer guides); any other host (a local emulator) gets the
# public cloud's, which is what Key Vault's challenge names there.
_KEY_VAULT_AUDIENCES = {
    "vault.azure.net": "https://vault.azure.net",
    "vault.azure.cn": "https://vault.azure.cn",
    "vault.usgovcloudapi.net": "https://vault.usgovcloudapi.net",
    "vault.microsoftazure.de": "https://vault.microsoftazure.de",
}


def key_vault_scope(vault_url: str) -> str:
    host = (urlparse(vault_url).hostname or "").lower()
    audience = _KEY_VAULT_AUDIENCES.get(host.partition(".")[2], _KEY_VAULT_AUDIENCES["vault.azure.net"])
    return f"{audience}/.default"


_Policy = AsyncHTTPPolicy[Any, Any] | SansIOHTTPPolicy[Any, Any]


def _object(response: Any) -> dict[str, Any]:
    """The body's JSON object (empty for no body or anything else), parsed from the bytes (UTF-8, as every
    one of these services answers): azure-core's ``text()`` first decodes by the Content-Type's charset,
    parsed with the ``email`` package."""
    content = response.body()
    answer = json.loads(content) if content else {}
    return answer if isinstance(answer, dict) else {}


def checked(
    sent: PipelineResponse[Any, Any], errors: Mapping[int, type[HttpResponseError]], expected: int
) -> PipelineResponse[Any, Any]:
    """``sent``, unless its status is not ``expected``: then raised as the generated code raises (404 as
    ``ResourceNotFoundError``…, the error's code parsed from the body by azure-core)."""
    response = sent.http_response
    if response.status_code != expected:
        map_error(response.status_code, response, dict(errors))
        raise HttpResponseError(response=response)
    return sent


class LeanPipeline:
    """One azure-core ``AsyncPipeline`` with the policies a call needs, and JSON in and out.

    Requests are azure-core's transport ``HttpRequest``, run on the pipeline itself: the ``azure.core.rest``
    request and response that ``AsyncPipelineClient.send_request`` takes add a compatibility layer (attribute
    look-ups through ``__getattr__``/``__setattr__``, dozens per call) that cost 15-20 % of a read's CPU
    (docs/BENCHMARKS.md §7, seventh pass); the pipeline response also tells whether the retry policy
    retried (its ``history``), which ``regenerateKey`` needs (``LeanAccounts``)."""

    def __init__(
        self,
        base_url: str,
        auth: _Policy,
        options: Mapping[str, Any],
        before_auth: Sequence[SansIOHTTPPolicy[Any, Any]] = (),
    ) -> None:
        retry = {k: options[k] for k in ("retry_total", "timeout") if k in options}
        self._timeouts = {k: options[k] for k in ("connection_timeout", "read_timeout") if k in options}
        policies: list[_Policy] = [
            UserAgentPolicy(sdk_moniker=USER_AGENT),
            AsyncRetryPolicy(**retry),
            *before_auth,  # per attempt, before the signature (Table's date)
            auth,
        ]
        self.base_url = base_url.rstrip("/")
        self._pipeline: AsyncPipeline[HttpRequest, Any] = AsyncPipeline(options["transport"], policies)

    async def send(
        self,
        method: str,
        url: str,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        errors: Mapping[int, type[HttpResponseError]] = _ERRORS,
        expected: int = 200,
        content: bytes | None = None,
    ) -> PipelineResponse[HttpRequest, Any]:
        """The answer, read whole (its ``context`` says whether the retry policy retried); any other status
        than ``expected`` raises (``checked``)."""
        request = HttpRequest(method, url, headers={"Accept": "application/json", **(headers or {})})
        if body is not None:
            request.set_json_body(body)  # the body and its length; its type as azure.core.rest sets it
            request.headers["Content-Type"] = "application/json"
        elif content is not None:
            request.set_bytes_body(content)  # a body of another type (Queue's XML): the caller names it
        sent = await self._pipeline.run(request, **self._timeouts)  # read whole (stream=False)
        return checked(sent, errors, expected)

    async def call(self, method: str, url: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``send`` for a JSON answer (200)."""
        return _object((await self.send(method, url, body)).http_response)

    async def close(self) -> None:
        """Closes nothing shared: the transport's session is the process's (``session_owner=False``)."""
        await self._pipeline.__aexit__()


class _OnSdk:
    """A lean client over ``sdk``, the ``.aio`` SDK client it stands in for: what it does not define is the
    SDK client's, and closing closes both."""

    sdk: Any
    pipeline: LeanPipeline

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sdk, name)

    async def close(self) -> None:
        await self.pipeline.close()
        await self.sdk.close()


@dataclass(frozen=True)
class LeanSecretProperties:
    version: str | None
    tags: dict[str, str] | None
    expires_on: datetime | None
    created_on: datetime | None


@dataclass(frozen=True)
class LeanSecret:
    """What ``KeyVaultSecretStore`` reads of the SDK's ``KeyVaultSecret``."""

    value: str | None = field(repr=False)
    properties: LeanSecretProperties


def _unix(seconds: Any) -> datetime | None:
    return datetime.fromtimestamp(seconds, UTC) if isinstance(seconds, int | float) else None


def _secret(bundle: Mapping[str, Any]) -> LeanSecret:
    """A SecretBundle (Key Vault REST) as the adapter reads it; ``id`` ends in the version."""
    attributes = bundle.get("attributes") or {}
    version = str(bundle.get("id") or "").rstrip("/").rpartition("/")[2] or None
    return LeanSecret(
        bundle.get("value"),
        LeanSecretProperties(
            version, bundle.get("tags"), _unix(attributes.get("exp")), _unix(attributes.get("created"))
        ),
    )


class LeanSecrets(_OnSdk):
    """``get_secret`` and ``set_secret`` on the lean pipeline; the rest of ``sdk`` (the ``.aio``
    ``SecretClient`` of the same vault) as it is."""

    def __init__(self, sdk: Any, credential: Any, options: Mapping[str, Any]) -> None:
        self.sdk = sdk
        self.vault_url = str(sdk.vault_url).rstrip("/")
        auth = AsyncBearerTokenCredentialPolicy(credential, key_vault_scope(self.vault_url))
        self.pipeline = LeanPipeline(self.vault_url, auth, options)

    def _url(self, name: str, tail: str = "") -> str:
        return f"{self.vault_url}/secrets/{quote(name, safe='')}{tail}?api-version={KEY_VAULT_API_VERSION}"

    async def get_secret(self, name: str) -> LeanSecret:
        """GetSecret, the latest version (``/secrets/{name}/``)."""
        return _secret(await self.pipeline.call("GET", self._url(name, "/")))

    async def set_secret(
        self,
        name: str,
        value: str,
        *,
        tags: Mapping[str, str] | None = None,
        expires_on: datetime | None = None,
        content_type: str | None = None,
    ) -> LeanSecret:
        """SetSecret: a new version (``exp`` in Unix seconds, as the SDK sends it)."""
        body: dict[str, Any] = {"value": value}
        if tags is not None:
            body["tags"] = dict(tags)
        if content_type is not None:
            body["contentType"] = content_type
        if expires_on is not None:
            body["attributes"] = {"exp": int(expires_on.timestamp())}
        return _secret(await self.pipeline.call("PUT", self._url(name), body))


@dataclass(frozen=True)
class LeanKeys:
    """What ``CognitiveServicesKeys`` reads of the SDK's ``ApiKeys``."""

    key1: str | None = field(repr=False)
    key2: str | None = field(repr=False)


class LeanAccounts:
    """``regenerate_key`` and ``list_keys`` on the lean pipeline; ``get``, ``list``… from ``sdk``'s
    ``accounts`` operations as they are."""

    def __init__(self, sdk: Any, pipeline: LeanPipeline, subscription_id: str) -> None:
        self.sdk = sdk
        self.pipeline = pipeline
        self.base = f"{pipeline.base_url}/subscriptions/{quote(subscription_id, safe='')}/resourceGroups"

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sdk.accounts, name)

    def _url(self, group: str, name: str, action: str) -> str:
        return (
            f"{self.base}/{quote(group, safe='')}/providers/Microsoft.CognitiveServices/accounts/"
            f"{quote(name, safe='')}/{action}?api-version={COGNITIVE_SERVICES_API_VERSION}"
        )

    async def list_keys(self, resource_group_name: str, account_name: str) -> LeanKeys:
        keys = await self.pipeline.call("POST", self._url(resource_group_name, account_name, "listKeys"))
        return LeanKeys(keys.get("key1"), keys.get("key2"))

    async def regenerate_key(
        self,
        resource_group_name: str,
        account_name: str,
        *,
        key_name: str,
        cls: Callable[[PipelineResponse[HttpRequest, Any], LeanKeys, dict[str, Any]], Any] | None = None,
    ) -> Any:
        """``cls`` as the generated operation calls it: with the pipeline response (whose context tells a
        retried POST), the keys, and the response headers."""
        url = self._url(resource_group_name, account_name, "regenerateKey")
        sent = await self.pipeline.send("POST", url, {"keyName": key_name})
        answer = _object(sent.http_response)
        keys = LeanKeys(answer.get("key1"), answer.get("key2"))
        return cls(sent, keys, {}) if cls else keys


class LeanArm(_OnSdk):
    """A subscription's ``CognitiveServicesManagementClient`` (``.aio``) with the lean ``accounts``."""

    def __init__(
        self,
        sdk: Any,
        subscription_id: str,
        credential: Any,
        arm_endpoint: str,
        arm_scope: str,
        options: Mapping[str, Any],
    ) -> None:
        self.sdk = sdk
        auth = AsyncARMChallengeAuthenticationPolicy(credential, arm_scope)
        self.pipeline = LeanPipeline(arm_endpoint, auth, options)
        self.accounts = LeanAccounts(sdk, self.pipeline, subscription_id)


# Table Storage (REST API version 2019-02-02, the SDK's): the three per-cycle entity operations.
TABLE_API_VERSION = "2019-02-02"
STORAGE_SCOPE = "https://storage.azure.com/.default"
_TABLE_HEADERS = {"x-ms-version": TABLE_API_VERSION, "DataServiceVersion": "3.0"}
_MINIMAL_METADATA = "application/json;odata=minimalmetadata"
_INT32 = range(-(2**31), 2**31)
# By status: azure-data-tables decides the class by Table's error code (its ``_decode_error``), which for
# these three operations comes to the same — EntityNotFound/TableNotFound 404, EntityAlreadyExists 409,
# UpdateConditionNotSatisfied 412 — but for a rare 409 such as TableBeingDeleted (here: "exists").
_TABLE_ERRORS: dict[int, type[HttpResponseError]] = {**_ERRORS, 412: ResourceModifiedError}


class _StorageDate(SansIOHTTPPolicy[Any, Any]):
    """``x-ms-date``, which Shared Key signs and Table requires (the SDK's ``StorageHeadersPolicy``)."""

    def on_request(self, request: Any) -> None:
        now = formatdate(usegmt=True)
        request.http_request.headers["x-ms-date"] = now
        request.http_request.headers["Date"] = now


def storage_auth(credential: Any) -> _Policy | None:
    """The table client's own credential as a policy: its account key (a connection string: signed by
    azure-data-tables' own Shared Key policy, so the canonical form is exactly the SDK's) or a token (the
    deployed identity). Anything else (SAS): None, and the SDK's operations are kept."""
    if isinstance(credential, AzureNamedKeyCredential):
        from azure.data.tables._authentication import SharedKeyCredentialPolicy

        return SharedKeyCredentialPolicy(credential)
    if hasattr(credential, "get_token") or hasattr(credential, "get_token_info"):
        return AsyncBearerTokenCredentialPolicy(credential, STORAGE_SCOPE)
    return None


def _table_value(name: str, value: Any, out: dict[str, Any]) -> None:
    """A property as azure-data-tables sends a plain Python value: bool, int32 and str bare (a JSON string is
    an Edm.String), a float as Edm.Double; an int past int32 refused as the SDK refuses it (it takes a
    large int only as an explicit Edm.Int64, which the engine never writes)."""
    if isinstance(value, bool | str):
        out[name] = value
    elif isinstance(value, int):
        if value not in _INT32:
            raise TypeError(f"{value} is too large to be cast to type Edm.Int32 (table property {name})")
        out[name] = value
    elif isinstance(value, float):
        out[name], out[f"{name}@odata.type"] = value, "Edm.Double"
    else:
        raise TypeError(f"table property {name}: {type(value).__name__} is not written by the lean call")


def _table_body(entity: Mapping[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for name, value in entity.items():
        if value is not None:
            _table_value(name, value, body)
    return body


_DOUBLES = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


class LeanEntity(dict[str, Any]):
    """What the adapters read of the SDK's ``TableEntity``: the properties, and ``metadata["etag"]``."""

    metadata: dict[str, Any]


def _entity(answer: Mapping[str, Any], etag: str | None) -> LeanEntity:
    entity = LeanEntity()
    for name, value in answer.items():
        if name.startswith("odata.") or name.endswith("@odata.type"):
            continue
        kind = answer.get(f"{name}@odata.type")
        if kind == "Edm.Int64":
            value = int(value)
        elif kind == "Edm.Double":
            value = _DOUBLES.get(value, value) if isinstance(value, str) else float(value)
        entity[name] = value
    entity.metadata = {"etag": etag or answer.get("odata.etag")}
    return entity


@lru_cache(maxsize=4096)
def _key(value: str) -> str:
    """A key in an entity's URL, quoted: the same few hundred keys (targets' partitions, budget rows) again
    and again, and ``quote`` walks a key with ``|`` in it character by character (~2 % of the loop's CPU in
    a cProfile of a round)."""
    return quote(value.replace("'", "''"), safe="")


class LeanTable(_OnSdk):
    """``create_entity``, ``update_entity`` and ``get_entity`` on the lean pipeline; the rest of ``sdk``
    (the ``.aio`` ``TableClient``: ``create_table``, queries) as it is."""

    def __init__(self, sdk: Any, auth: _Policy, options: Mapping[str, Any]) -> None:
        self.sdk = sdk
        self.table_url = f"{str(sdk.url).rstrip('/')}/{quote(sdk.table_name, safe='')}"
        self.pipeline = LeanPipeline(str(sdk.url), auth, options, (_StorageDate(),))

    def _entity_url(self, partition_key: str, row_key: str) -> str:
        return f"{self.table_url}(PartitionKey='{_key(partition_key)}',RowKey='{_key(row_key)}')"

    async def create_entity(self, entity: Mapping[str, Any]) -> dict[str, Any]:
        """Insert Entity, answered without the entity (``Prefer: return-no-content``, as the SDK asks)."""
        headers = {**_TABLE_HEADERS, "Prefer": "return-no-content", "Accept": _MINIMAL_METADATA}
        body = _table_body(entity)
        sent = await self.pipeline.send("POST", self.table_url, body, headers, _TABLE_ERRORS, 204)
        return {"etag": sent.http_response.headers.get("ETag")}

    async def update_entity(
        self,
        entity: Mapping[str, Any],
        mode: Any = None,
        *,
        etag: str | None = None,
        match_condition: MatchConditions | None = None,
    ) -> dict[str, Any]:
        """Update Entity, replacing it (``UpdateMode.REPLACE``, the only mode the engine uses), under the
        ETag when ``match_condition`` is ``IfNotModified``."""
        if mode is not None and str(getattr(mode, "value", mode)).lower() != "replace":
            raise ValueError(f"the lean update_entity replaces; {mode} goes through the SDK")
        headers = {**_TABLE_HEADERS, "Accept": "application/json"}
        if match_condition is MatchConditions.IfNotModified:
            if not etag:
                raise ValueError("update_entity: IfNotModified needs the entity's etag")
            headers["If-Match"] = etag
        elif match_condition not in (None, MatchConditions.Unconditionally):
            raise ValueError(f"the lean update_entity does not take {match_condition}")
        else:
            headers["If-Match"] = "*"
        url = self._entity_url(str(entity["PartitionKey"]), str(entity["RowKey"]))
        sent = await self.pipeline.send("PUT", url, _table_body(entity), headers, _TABLE_ERRORS, 204)
        return {"etag": sent.http_response.headers.get("ETag")}

    async def get_entity(self, partition_key: str, row_key: str) -> LeanEntity:
        """Query Entities for one entity by its keys (minimal metadata: typed values carry their type)."""
        url = f"{self._entity_url(partition_key, row_key)}?$format={quote(_MINIMAL_METADATA, safe='')}"
        headers = {**_TABLE_HEADERS, "Accept": _MINIMAL_METADATA}
        sent = await self.pipeline.send("GET", url, None, headers, _TABLE_ERRORS, 200)
        return _entity(_object(sent.http_response), sent.http_response.headers.get("ETag"))


# Queue Storage: Put Message, as azure-storage-queue sends it (its api-version, its XML body).
_QUEUE_MESSAGE = (
    "<?xml version='1.0' encoding='utf-8'?>\n<QueueMessage><MessageText>{}</MessageText></QueueMessage>"
)


def queue_auth(credential: Any) -> _Policy | None:
    """The queue client's own credential as a policy: the Shared Key policy azure-storage-queue built from a
    connection string's key (its own object, so the Blob/Queue canonical form is the SDK's), or a token (the
    deployed identity). Anything else (SAS): None, and the SDK's operation is kept."""
    if isinstance(credential, SansIOHTTPPolicy):
        return credential
    if hasattr(credential, "get_token") or hasattr(credential, "get_token_info"):
        return AsyncBearerTokenCredentialPolicy(credential, STORAGE_SCOPE)
    return None


class LeanQueue(_OnSdk):
    """``send_message`` on the lean pipeline; the rest of ``sdk`` (the ``.aio`` ``QueueClient``: receiving,
    deleting, creating the queue) as it is. ``encode`` is the client's message encoding (the Functions
    trigger's base64)."""

    def __init__(
        self, sdk: Any, auth: _Policy, encode: Callable[[str], str], options: Mapping[str, Any]
    ) -> None:
        self.sdk = sdk
        self.encode = encode
        self.messages_url = f"{str(sdk.url).partition('?')[0].rstrip('/')}/messages"
        self.headers = {
            "x-ms-version": str(sdk.api_version),
            "Content-Type": "application/xml",
            "Accept": "application/xml",
        }
        self.pipeline = LeanPipeline(self.messages_url, auth, options, (_StorageDate(),))

    async def send_message(self, content: str, *, visibility_timeout: int | None = None) -> None:
        """Put Message: visible after ``visibility_timeout`` seconds, kept the service's default 7 days."""
        text = escape(self.encode(content))
        url = self.messages_url
        if visibility_timeout is not None:
            url += f"?visibilitytimeout={int(visibility_timeout)}"
        body = _QUEUE_MESSAGE.format(text).encode()
        await self.pipeline.send("POST", url, None, self.headers, _ERRORS, 201, content=body)
