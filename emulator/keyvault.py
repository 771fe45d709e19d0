"""Key Vault secrets (data plane), as azure-keyvault-secrets 4.x speaks it. See DESIGN §6."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulator.core import KEY_VAULT_AUDIENCES, Emulator
from emulator.errors import KEYVAULT, json_response, keyvault_error, keyvault_forbidden_by_rbac
from emulator.keyvault_paging import BadParameter, decode_token, encode_token, next_link, page_size
from emulator.operations import Handler, run_operation
from emulator.state import DeletedSecret, SecretVersion
from emulator.tokens import TokenProblem, TokenRejected

NAME_PATTERN = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
MAX_VALUE_BYTES = 25 * 1024
MAX_TAGS = 15
RECOVERABLE_DAYS = 90
RECOVERY_LEVEL = "Recoverable+Purgeable"
NOT_FOUND_HINT = (
    "If you recently deleted this secret you may be able to recover it using the correct recovery command. "
    "For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
)


def _challenge_header(emulator: Emulator) -> dict[str, str]:
    return {
        "WWW-Authenticate": (
            f'Bearer authorization="https://login.microsoftonline.com/{emulator.config.tenant_id}", '
            'resource="https://vault.azure.net"'
        )
    }


def _check_token(emulator: Emulator, request: Request) -> Response | None:
    try:
        emulator.tokens.check_authorization(request.headers.get("authorization"), KEY_VAULT_AUDIENCES)
    except TokenRejected as rejected:
        messages = {
            TokenProblem.MISSING: "AKV10000: Request is missing a Bearer or PoP token.",
            TokenProblem.MALFORMED: "AKV10001: Invalid token format.",
            TokenProblem.BAD_SIGNATURE: "AKV10032: Invalid issuer or signature. The token was not issued "
            "by this tenant's identity endpoint.",
            TokenProblem.EXPIRED: "AKV10011: Token expired.",
            TokenProblem.WRONG_AUDIENCE: f"AKV10022: Invalid audience. Expected https://vault.azure.net, "
            f"found: {rejected.audience}.",
        }
        return keyvault_error(401, "Unauthorized", messages[rejected.problem], _challenge_header(emulator))
    return None


THROTTLED_MESSAGE = (
    "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached"
)


def _check_throttle(emulator: Emulator, vault: str, operation: str) -> Response | None:
    """Key Vault's service limits per vault: 300 secret CREATEs (a set_secret makes a new version) and
    4,000 other transactions per 10 seconds. A throttled request does not count."""
    allowed, retry_after = emulator.knobs.vault_throttle(vault, operation == "keyvault.set_secret")
    if allowed:
        return None
    return keyvault_error(429, "Throttled", THROTTLED_MESSAGE, {"Retry-After": str(retry_after)})


def _check_api_version(request: Request) -> Response | None:
    if not request.query_params.get("api-version"):
        return keyvault_error(
            400, "BadParameter", "The request URI contains an invalid or missing api-version query parameter."
        )
    return None


def _check_name(name: str) -> Response | None:
    if not NAME_PATTERN.match(name):
        return keyvault_error(400, "BadParameter", f"The request URI contains an invalid name: {name}")
    return None


def _attributes(version: SecretVersion) -> dict[str, Any]:
    attributes: dict[str, Any] = {"enabled": version.enabled}
    if version.not_before is not None:
        attributes["nbf"] = version.not_before
    if version.expires is not None:
        attributes["exp"] = version.expires
    attributes.update(
        created=version.created,
        updated=version.updated,
        recoveryLevel=RECOVERY_LEVEL,
        recoverableDays=RECOVERABLE_DAYS,
    )
    return attributes


def _bundle(vault_url: str, version: SecretVersion, include_value: bool = True) -> dict[str, Any]:
    bundle: dict[str, Any] = {}
    if include_value:
        bundle["value"] = version.value
    bundle["id"] = f"{vault_url}/secrets/{version.name}/{version.version}"
    if version.content_type is not None:
        bundle["contentType"] = version.content_type
    if version.tags is not None:
        bundle["tags"] = version.tags
    bundle["attributes"] = _attributes(version)
    return bundle


def _item(vault_url: str, version: SecretVersion, with_version: bool) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": f"{vault_url}/secrets/{version.name}" + (f"/{version.version}" if with_version else ""),
        "attributes": _attributes(version),
    }
    if version.content_type is not None:
        item["contentType"] = version.content_type
    if version.tags is not None:
        item["tags"] = version.tags
    return item


def _deleted_bundle(vault_url: str, deleted: DeletedSecret) -> dict[str, Any]:
    latest = deleted.versions[-1]
    bundle = _bundle(vault_url, latest, include_value=False)
    bundle.update(
        recoveryId=f"{vault_url}/deletedsecrets/{latest.name}",
        deletedDate=deleted.deleted_date,
        scheduledPurgeDate=deleted.scheduled_purge_date,
    )
    return bundle


def _not_found(name: str, version: str | None = None) -> Response:
    what = f"{name}/{version}" if version else name
    return keyvault_error(
        404,
        "SecretNotFound",
        f"A secret with (name/id) {what} was not found in this key vault. {NOT_FOUND_HINT}",
    )


def _optional_int(attributes: dict[str, Any], key: str) -> int | None:
    value = attributes.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadParameter(f"Property attributes.{key} must be a Unix time in seconds")
    return int(value)


def _validated_properties(body: dict[str, Any]) -> dict[str, Any]:
    """Parse contentType, tags and attributes of a set/update body (only the keys present)."""
    parsed: dict[str, Any] = {}
    if "contentType" in body:
        content_type = body["contentType"]
        if content_type is not None and (not isinstance(content_type, str) or len(content_type) > 255):
            raise BadParameter("Property contentType must be a string of at most 255 characters")
        parsed["content_type"] = content_type
    if "tags" in body:
        tags = body["tags"]
        if tags is not None:
            if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
                raise BadParameter("Property tags must be an object of string values")
            if len(tags) > MAX_TAGS:
                raise BadParameter(f"A maximum of {MAX_TAGS} tags is allowed")
            if any(len(k) > 512 or len(v) > 256 for k, v in tags.items()):
                raise BadParameter("Tag names are limited to 512 characters and values to 256 characters")
        parsed["tags"] = tags
    attributes = body.get("attributes")
    if attributes is not None:
        if not isinstance(attributes, dict):
            raise BadParameter("Property attributes must be an object")
        if "enabled" in attributes:
            if not isinstance(attributes["enabled"], bool):
                raise BadParameter("Property attributes.enabled must be a boolean")
            parsed["enabled"] = attributes["enabled"]
        if "nbf" in attributes:
            parsed["not_before"] = _optional_int(attributes, "nbf")
        if "exp" in attributes:
            parsed["expires"] = _optional_int(attributes, "exp")
    return parsed


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        raise BadParameter("The request body is missing")
    try:
        body = json.loads(raw)
    except ValueError as error:
        raise BadParameter("The request body is not valid JSON") from error
    if not isinstance(body, dict):
        raise BadParameter("The request body must be a JSON object")
    return body


class KeyVaultSecrets:
    """One vault's secrets API: the default vault (``vault=None``) on the main port, or a vault added with
    ``POST /_emulator/vaults`` on its own port (``url``)."""

    def __init__(self, emulator: Emulator, vault: str | None = None, url: str | None = None) -> None:
        self.emulator = emulator
        self.vault_name = vault
        self._url = url

    @property
    def vault_url(self) -> str:
        return self._url or self.emulator.vault_url

    # -- plumbing -----------------------------------------------------------------------------------

    def _endpoint(self, operation: str, handler: Handler, check_name: bool = True) -> Handler:
        emulator = self.emulator

        async def guarded(request: Request) -> Response:
            # The SDK's first request carries no token and no body: answer the challenge before reading.
            denied = _check_token(emulator, request) or _check_api_version(request)
            vault = emulator.vault(self.vault_name)
            if denied is None and vault.identity_denied:
                denied = keyvault_forbidden_by_rbac(vault.name, operation)
            if denied is None:
                denied = _check_throttle(emulator, vault.name, operation)
            if denied is None and check_name and "name" in request.path_params:
                denied = _check_name(request.path_params["name"])
            if denied is not None:
                return denied
            try:
                return await handler(request)
            except BadParameter as error:
                return keyvault_error(400, "BadParameter", str(error))

        async def endpoint(request: Request) -> Response:
            return await run_operation(emulator, request, operation, KEYVAULT, guarded)

        return endpoint

    def routes(self) -> list[Route]:
        e = self._endpoint
        return [
            Route("/secrets", e("keyvault.list_secrets", self.list_secrets), methods=["GET"]),
            Route("/secrets/{name}", e("keyvault.set_secret", self.set_secret), methods=["PUT"]),
            Route("/secrets/{name}", e("keyvault.delete_secret", self.delete_secret), methods=["DELETE"]),
            Route("/secrets/{name}/", e("keyvault.get_secret", self.get_secret), methods=["GET"]),
            Route(
                "/secrets/{name}/",
                e("keyvault.update_secret_properties", self.update_secret),
                methods=["PATCH"],
            ),
            Route(
                "/secrets/{name}/versions",
                e("keyvault.list_secret_versions", self.list_versions),
                methods=["GET"],
            ),
            Route("/secrets/{name}/{version}", e("keyvault.get_secret", self.get_secret), methods=["GET"]),
            Route(
                "/secrets/{name}/{version}",
                e("keyvault.update_secret_properties", self.update_secret),
                methods=["PATCH"],
            ),
            Route(
                "/deletedsecrets/{name}", e("keyvault.get_deleted_secret", self.get_deleted), methods=["GET"]
            ),
            Route(
                "/deletedsecrets/{name}",
                e("keyvault.purge_deleted_secret", self.purge_deleted),
                methods=["DELETE"],
            ),
            Route(
                "/deletedsecrets/{name}/recover",
                e("keyvault.recover_deleted_secret", self.recover_deleted),
                methods=["POST"],
            ),
        ]

    def _find(self, name: str, version: str | None) -> SecretVersion | Response:
        versions = self.emulator.vault(self.vault_name).secrets.get(name.lower())
        if not versions:
            return _not_found(name, version)
        if not version:
            return versions[-1]
        for candidate in versions:
            if candidate.version == version.lower():
                return candidate
        return _not_found(name, version)

    # -- operations ---------------------------------------------------------------------------------

    async def set_secret(self, request: Request) -> Response:
        name = request.path_params["name"]
        state = self.emulator.vault(self.vault_name)
        if name.lower() in state.deleted_secrets:
            return keyvault_error(
                409,
                "Conflict",
                f"Secret {name} is currently in a deleted but recoverable state, and its name cannot be "
                "reused; in this state, the secret can only be recovered or purged.",
                inner_code="ObjectIsDeletedButRecoverable",
            )
        body = await _json_body(request)
        value = body.get("value")
        if not isinstance(value, str):
            raise BadParameter("Property 'value' is required and must be a string")
        if len(value.encode("utf-8")) > MAX_VALUE_BYTES:
            raise BadParameter(f"Secret value is too large: the maximum is {MAX_VALUE_BYTES} bytes")
        properties = _validated_properties(body)
        now = int(self.emulator.now())
        existing = state.secrets.get(name.lower())
        stored_name = existing[-1].name if existing else name
        version = SecretVersion(
            name=stored_name,
            version=uuid.uuid4().hex,
            value=value,
            content_type=properties.get("content_type"),
            tags=properties.get("tags"),
            enabled=properties.get("enabled", True),
            not_before=properties.get("not_before"),
            expires=properties.get("expires"),
            created=now,
            updated=now,
        )
        state.secrets.setdefault(name.lower(), []).append(version)
        self.emulator.persist()
        self._changed(name)
        self.emulator.evaluate_events()
        return json_response(_bundle(self.vault_url, version))

    def _changed(self, name: str) -> None:
        # Near-expiry events are emitted for the default vault only (docs/EMULATOR.md, "Several vaults").
        if self.vault_name is None:
            self.emulator.secret_changed(name)

    async def get_secret(self, request: Request) -> Response:
        found = self._find(request.path_params["name"], request.path_params.get("version"))
        if isinstance(found, Response):
            return found
        if not found.enabled:
            return keyvault_error(
                403,
                "Forbidden",
                "Operation get is not allowed on a disabled secret.",
                inner_code="SecretDisabled",
            )
        return json_response(_bundle(self.vault_url, found))

    async def update_secret(self, request: Request) -> Response:
        found = self._find(request.path_params["name"], request.path_params.get("version"))
        if isinstance(found, Response):
            return found
        properties = _validated_properties(await _json_body(request))
        for key, value in properties.items():
            setattr(found, key, value)
        found.updated = int(self.emulator.now())
        self.emulator.persist()
        self._changed(found.name)
        self.emulator.evaluate_events()
        return json_response(_bundle(self.vault_url, found, include_value=False))

    async def list_secrets(self, request: Request) -> Response:
        size = page_size(request)
        token = request.query_params.get("$skiptoken")
        after = decode_token(token) if token else ""
        secrets = self.emulator.vault(self.vault_name).secrets
        names = sorted(key for key in secrets if key > after)
        page = names[:size]
        items = [_item(self.vault_url, secrets[key][-1], with_version=False) for key in page]
        link = next_link(request, "/secrets", encode_token(page[-1]), size) if len(names) > size else None
        return json_response({"value": items, "nextLink": link})

    async def list_versions(self, request: Request) -> Response:
        size = page_size(request)
        token = request.query_params.get("$skiptoken")
        try:
            offset = int(decode_token(token)) if token else 0
        except ValueError as error:
            raise BadParameter("The $skiptoken query parameter is invalid") from error
        name = request.path_params["name"]
        versions = self.emulator.vault(self.vault_name).secrets.get(name.lower(), [])
        page = versions[offset : offset + size]
        items = [_item(self.vault_url, version, with_version=True) for version in page]
        next_offset = offset + size
        link = (
            next_link(request, f"/secrets/{name}/versions", encode_token(str(next_offset)), size)
            if next_offset < len(versions)
            else None
        )
        return json_response({"value": items, "nextLink": link})

    async def delete_secret(self, request: Request) -> Response:
        name = request.path_params["name"]
        state = self.emulator.vault(self.vault_name)
        versions = state.secrets.pop(name.lower(), None)
        if not versions:
            return _not_found(name)
        now = int(self.emulator.now())
        deleted = DeletedSecret(versions, now, now + RECOVERABLE_DAYS * 86400)
        state.deleted_secrets[name.lower()] = deleted
        self.emulator.persist()
        return json_response(_deleted_bundle(self.vault_url, deleted))

    async def get_deleted(self, request: Request) -> Response:
        name = request.path_params["name"]
        deleted = self.emulator.vault(self.vault_name).deleted_secrets.get(name.lower())
        if deleted is None:
            return keyvault_error(404, "SecretNotFound", f"Deleted Secret not found: {name}")
        return json_response(_deleted_bundle(self.vault_url, deleted))

    async def purge_deleted(self, request: Request) -> Response:
        name = request.path_params["name"]
        if self.emulator.vault(self.vault_name).deleted_secrets.pop(name.lower(), None) is None:
            return keyvault_error(404, "SecretNotFound", f"Deleted Secret not found: {name}")
        self.emulator.persist()
        return Response(status_code=204)

    async def recover_deleted(self, request: Request) -> Response:
        name = request.path_params["name"]
        state = self.emulator.vault(self.vault_name)
        deleted = state.deleted_secrets.pop(name.lower(), None)
        if deleted is None:
            return keyvault_error(404, "SecretNotFound", f"Deleted Secret not found: {name}")
        state.secrets[name.lower()] = deleted.versions
        self.emulator.persist()
        self._changed(name)
        return json_response(_bundle(self.vault_url, deleted.versions[-1], include_value=False))
