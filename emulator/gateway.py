"""The Cognitive Services gateway's routing table: which documented APIs each endpoint shape serves, for
which kinds, with which key headers. Pure data; ``emulator/dataplane.py`` answers the requests.

The gateway routes before it checks the key: a path that is no API answers 404 "Resource not found"
whatever the key. Azure does not document the order, and this is the case that fools a probe, so it is the
one emulated (docs/EMULATOR.md "Data plane").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Shape(StrEnum):
    CUSTOM = "custom"  # https://127.0.0.1:P/accounts/{name}/   (https://{name}.cognitiveservices.azure.com/)
    REGIONAL = "regional"  # https://127.0.0.1:P/regional/{region}/   (https://{region}.api.cognitive.microsoft.com/)
    GLOBAL = "global"  # https://127.0.0.1:P/global/translator/   (https://api.cognitive.microsofttranslator.com/)


SUBSCRIPTION_KEY = "ocp-apim-subscription-key"
API_KEY = "api-key"
MULTI_SERVICE = frozenset({"AIServices", "CognitiveServices"})
ALL_KINDS = frozenset(
    {
        "AIServices", "CognitiveServices", "OpenAI", "TextAnalytics", "ComputerVision", "SpeechServices",
        "FormRecognizer", "ContentSafety", "TextTranslation", "Face", "LUIS", "CustomVision.Prediction",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Api:
    name: str
    method: str
    path: re.Pattern[str]  # below the endpoint, without the query
    shapes: frozenset[Shape]
    kinds: frozenset[str]
    key_headers: tuple[str, ...] = (SUBSCRIPTION_KEY,)
    authenticated: bool = True
    region_scoped: bool = False  # Translator: a regional key needs Ocp-Apim-Subscription-Region


def _path(pattern: str) -> re.Pattern[str]:
    return re.compile(f"^{pattern}$", re.IGNORECASE)


_CUSTOM = frozenset({Shape.CUSTOM})
_CUSTOM_OR_REGIONAL = frozenset({Shape.CUSTOM, Shape.REGIONAL})
OPENAI_KINDS = frozenset({"OpenAI", "AIServices"})

APIS: tuple[Api, ...] = (
    # articles/ai-services/authentication.md: the token exchange every key-based resource documents.
    Api("sts.issueToken", "POST", _path(r"sts/v1\.0/issuetoken"), _CUSTOM_OR_REGIONAL, ALL_KINDS),
    Api("openai.models", "GET", _path(r"openai/models"), _CUSTOM, OPENAI_KINDS, (API_KEY, SUBSCRIPTION_KEY)),
    Api(
        "openai.chat_completions", "POST", _path(r"openai/deployments/[^/]+/chat/completions"), _CUSTOM,
        OPENAI_KINDS, (API_KEY, SUBSCRIPTION_KEY),
    ),
    Api(
        "documentintelligence.info", "GET", _path(r"(documentintelligence|formrecognizer)/info"),
        _CUSTOM_OR_REGIONAL, MULTI_SERVICE | {"FormRecognizer"},
    ),
    Api(
        "contentsafety.blocklists", "GET", _path(r"contentsafety/text/blocklists"), _CUSTOM_OR_REGIONAL,
        MULTI_SERVICE | {"ContentSafety"},
    ),
    Api(
        "translator.translate", "POST", _path(r"translator/text/v3\.0/translate"), _CUSTOM,
        MULTI_SERVICE | {"TextTranslation"}, region_scoped=True,
    ),
    Api(
        "translator.translate", "POST", _path(r"translate"), frozenset({Shape.GLOBAL}),
        MULTI_SERVICE | {"TextTranslation"}, region_scoped=True,
    ),
    # Translator's language list needs no key at all: a 200 there proves nothing about a key.
    Api(
        "translator.languages", "GET", _path(r"languages"), frozenset({Shape.GLOBAL}), ALL_KINDS,
        authenticated=False,
    ),
)  # fmt: skip


def route(shape: Shape, method: str, path: str) -> Api | None:
    """The API a request names on an endpoint of ``shape``, or None (→ 404 whatever the key)."""
    for api in APIS:
        if shape in api.shapes and api.method == method.upper() and api.path.match(path.strip("/")):
            return api
    return None
