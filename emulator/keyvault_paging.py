"""Key Vault's list paging (``maxresults``, ``$skiptoken``, absolute ``nextLink``) and its 400 error."""

from __future__ import annotations

import base64
from urllib.parse import quote

from starlette.requests import Request

MAX_PAGE_SIZE = 25


class BadParameter(ValueError):
    """Answered as 400 BadParameter by the Key Vault routes."""


def encode_token(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def decode_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except ValueError as error:
        raise BadParameter("The $skiptoken query parameter is invalid") from error


def page_size(request: Request) -> int:
    raw = request.query_params.get("maxresults")
    if raw is None:
        return MAX_PAGE_SIZE
    try:
        size = int(raw)
    except ValueError as error:
        raise BadParameter(f"maxresults must be an integer between 1 and {MAX_PAGE_SIZE}") from error
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise BadParameter(f"maxresults must be an integer between 1 and {MAX_PAGE_SIZE}")
    return size


def next_link(request: Request, path: str, token: str, size: int) -> str:
    api_version = quote(request.query_params.get("api-version", ""))
    return (
        f"{request.url.scheme}://{request.url.netloc}{path}?api-version={api_version}"
        f"&$skiptoken={token}&maxresults={size}"
    )
