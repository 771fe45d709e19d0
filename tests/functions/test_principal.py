"""X-MS-CLIENT-PRINCIPAL parsing and the admin role decision."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.functions.builders import principal_header
from triggers.principal import FUNCTION_KEY_REQUESTER, authorize

ROLE = "Rotation.Admin"
PRINCIPAL_KEYS = ["claims", "typ", "val", "role_typ", "name_typ", "auth_typ", "x"]
MS_ROLE_TYPE = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"


def _b64(document: object) -> str:
    return base64.b64encode(json.dumps(document).encode()).decode()


def test_without_admin_role_the_header_is_ignored_and_the_function_key_is_the_requester() -> None:
    for headers in ({}, {"x-ms-client-principal": "garbage!"}, {"x-ms-client-principal": principal_header()}):
        decision = authorize(headers, None)
        assert decision.allowed and decision.requester == FUNCTION_KEY_REQUESTER


@pytest.mark.parametrize("role_typ", ["roles", MS_ROLE_TYPE])
def test_a_principal_with_the_role_is_allowed_and_named(role_typ: str) -> None:
    header = principal_header("alice@contoso.com", (ROLE,), role_typ)
    decision = authorize({"x-ms-client-principal": header}, ROLE)
    assert decision.allowed and decision.requester == "alice@contoso.com"


def test_roles_claim_counts_even_when_role_typ_names_another_type() -> None:
    header = _b64({"auth_typ": "aad", "name_typ": "name", "role_typ": MS_ROLE_TYPE,
                   "claims": [{"typ": "roles", "val": ROLE}, {"typ": "name", "val": "bob"}]})
    assert authorize({"x-ms-client-principal": header}, ROLE).requester == "bob"


def test_name_falls_back_to_other_identity_claims_and_is_cleaned() -> None:
    header = _b64({"auth_typ": "aad", "name_typ": "absent", "role_typ": "roles",
                   "claims": [{"typ": "roles", "val": ROLE},
                              {"typ": "preferred_username", "val": "c\x00d" + "x" * 300}]})
    requester = authorize({"x-ms-client-principal": header}, ROLE).requester
    assert requester is not None and requester.startswith("c?d") and len(requester) == 128


def test_a_principal_without_any_name_is_recorded_as_unnamed() -> None:
    header = principal_header(name=None)
    assert authorize({"x-ms-client-principal": header}, ROLE).requester == "unnamed-principal"


def test_header_lookup_is_case_insensitive_like_the_functions_host() -> None:
    import azure.functions as func

    req = func.HttpRequest("GET", "https://x/api/targets",
                           headers={"X-MS-CLIENT-PRINCIPAL": principal_header()}, body=b"")
    assert authorize(req.headers, ROLE).allowed


@pytest.mark.parametrize(("label", "header", "status"), [
    ("missing", None, 401),
    ("empty", "", 401),
    ("not base64", "not base64!!", 401),
    ("base64 of non-json", base64.b64encode(b"hello").decode(), 401),
    ("base64 of invalid utf8", base64.b64encode(b"\xff\xfe").decode(), 401),
    ("json list", _b64([1, 2]), 401),
    ("no claims", _b64({"auth_typ": "aad"}), 401),
    ("claims not a list", _b64({"claims": {"typ": "roles"}}), 401),
    ("claim not an object", _b64({"claims": ["roles"]}), 401),
    ("claim val not a string", _b64({"claims": [{"typ": "roles", "val": 1}]}), 401),
    ("role_typ not a string", _b64({"claims": [], "role_typ": 5}), 401),
    ("huge", "A" * 20000, 401),
    ("no roles", principal_header(roles=()), 403),
    ("other role", principal_header(roles=("Reader",)), 403),
    ("role in a name claim", _b64({"claims": [{"typ": "name", "val": ROLE}]}), 403),
    ("role with different case", principal_header(roles=(ROLE.lower(),)), 403),
])
def test_bad_principals_are_refused(label: str, header: str | None, status: int) -> None:
    headers = {} if header is None else {"x-ms-client-principal": header}
    decision = authorize(headers, ROLE)
    assert not decision.allowed, label
    assert decision.status == status, label
    assert decision.reason


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: base64.b64encode(b).decode()),
                 st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                              lambda inner: st.lists(inner, max_size=3)
                              | st.dictionaries(st.sampled_from(PRINCIPAL_KEYS), inner, max_size=4),
                              max_leaves=15).map(_b64)))
def test_fuzzed_principals_never_raise_and_never_pass_without_the_role(header: str) -> None:
    decision = authorize({"x-ms-client-principal": header}, ROLE)
    assert decision.allowed is False or ROLE in base64.b64decode(header + "==").decode("utf-8", "replace")
    if not decision.allowed:
        assert decision.status in (401, 403)


@pytest.mark.parametrize("depth", [100, 1000, 5000])
def test_deeply_nested_principal_json_is_a_401_not_a_crash(depth: int) -> None:
    """Found by adversarial testing: 5,000 nested arrays fit in the 16 KB bound and made json.loads raise
    RecursionError, so every admin route answered 500."""
    document = "[" * depth + "]" * depth
    header = base64.b64encode(document.encode()).decode()
    assert len(header) <= 16 * 1024
    decision = authorize({"x-ms-client-principal": header}, ROLE)
    assert not decision.allowed
    assert decision.status == 401


@settings(max_examples=100, deadline=None)
@given(depth=st.integers(min_value=1, max_value=6000), opener=st.sampled_from(['[', '{"claims":']),
       closer=st.booleans())
def test_hostile_principal_shapes_never_raise(depth: int, opener: str, closer: bool) -> None:
    document = opener * depth + ("" if not closer else ("]" if opener == "[" else "}") * depth)
    header = base64.b64encode(document.encode()).decode()
    decision = authorize({"x-ms-client-principal": header}, ROLE)
    assert not decision.allowed
    assert decision.status == 401
