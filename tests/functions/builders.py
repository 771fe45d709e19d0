"""Trigger payloads built the way the Functions worker builds them (through the library's converters)."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import urlsplit

import azure.functions as func
from azure.functions import meta
from azure.functions.eventgrid import EventGridEventInConverter
from azure.functions.queue import QueueMessageInConverter

SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"
NEAR_EXPIRY = "Microsoft.KeyVault.SecretNearExpiry"
EXPIRED = "Microsoft.KeyVault.SecretExpired"


def decode_event(body: dict[str, Any]) -> Any:
    """What the worker passes to an Event Grid trigger for one array element of the delivery."""
    return EventGridEventInConverter.decode(meta.Datum(json.dumps(body), "json"), trigger_metadata={})


def key_vault_event_body(vault_url: str, secret: str, version: str, *, event_type: str = NEAR_EXPIRY,
                         event_id: str = "evt-1", pascal: bool = True, nbf: Any = None,
                         exp: Any = "1559081980", cloud: bool = False,
                         vault_name: str = "kv-rot") -> dict[str, Any]:
    topic = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/"
             f"{vault_name}")
    fields = {"Id": f"{vault_url.rstrip('/')}/secrets/{secret}/{version}", "VaultName": vault_name,
              "ObjectType": "Secret", "ObjectName": secret, "Version": version, "NBF": nbf, "EXP": exp}
    data = fields if pascal else {_camel(key): value for key, value in fields.items()}
    if cloud:
        return {"specversion": "1.0", "id": event_id, "source": topic, "subject": secret, "type": event_type,
                "time": "2026-01-01T00:00:00.1234567Z", "datacontenttype": "application/json", "data": data}
    return {"id": event_id, "topic": topic, "subject": secret, "eventType": event_type,
            "eventTime": "2026-01-01T00:00:00.1234567Z", "data": data, "dataVersion": "1",
            "metadataVersion": "1"}


def _camel(key: str) -> str:
    return key.lower() if key in ("NBF", "EXP") else key[0].lower() + key[1:]


def principal_header(name: str | None = "alice@example.com", roles: tuple[str, ...] = ("Rotation.Admin",),
                     role_typ: str = "roles") -> str:
    claims = [{"typ": role_typ, "val": role} for role in roles]
    if name is not None:
        claims.append({"typ": "name", "val": name})
    document = {"auth_typ": "aad", "claims": claims, "name_typ": "name", "role_typ": role_typ}
    return base64.b64encode(json.dumps(document).encode()).decode()


def http_request(method: str, path: str, *, route_params: dict[str, str] | None = None,
                 params: dict[str, str] | None = None, headers: dict[str, str] | None = None,
                 body: bytes = b"") -> func.HttpRequest:
    url = f"https://rotation-app.azurewebsites.net{path}"
    query = params if params is not None else {}
    return func.HttpRequest(method=method, url=url, headers=headers or {}, params=query,
                            route_params=route_params or {}, body=body)


def queue_message(body: bytes | str, *, message_id: str = "m-1", dequeue_count: int = 1) -> Any:
    """What the worker passes to a queue trigger (body + the host's trigger metadata)."""
    metadata = {"Id": meta.Datum(message_id, "string"),
                "DequeueCount": meta.Datum(str(dequeue_count), "json"),
                "PopReceipt": meta.Datum("receipt", "string")}
    kind = "bytes" if isinstance(body, bytes) else "string"
    return QueueMessageInConverter.decode(meta.Datum(body, kind), trigger_metadata=metadata)


def path_of(url: str) -> str:
    return urlsplit(url).path
