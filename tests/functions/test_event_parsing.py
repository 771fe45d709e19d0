"""Key Vault event parsing: every schema variant the trigger can deliver, and garbage that must be ignored."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.functions.builders import EXPIRED, NEAR_EXPIRY, decode_event, key_vault_event_body
from triggers.key_vault_events import IgnoredEvent, SecretEvent, parse_event

VAULT = "https://kv-rot.vault.azure.net/"
VERSION = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("cloud", [False, True], ids=["eventgrid-schema", "cloudevents"])
@pytest.mark.parametrize("pascal", [True, False], ids=["PascalCase", "camelCase"])
@pytest.mark.parametrize("event_type", [NEAR_EXPIRY, EXPIRED])
def test_secret_events_parse_in_every_schema_and_casing(cloud: bool, pascal: bool, event_type: str) -> None:
    body = key_vault_event_body(VAULT, "acct-active", VERSION, cloud=cloud, pascal=pascal,
                                event_type=event_type, nbf=1559081000, exp="1559081980")
    parsed = parse_event(decode_event(body))
    assert parsed == SecretEvent(event_id="evt-1", event_type=event_type, vault_url=VAULT,
                                 vault_name="kv-rot", secret_name="acct-active", version=VERSION,
                                 not_before=1559081000, expires=1559081980)


@pytest.mark.parametrize(("raw", "expected"), [
    (None, None), ("", None), (1559081980, 1559081980), (1559081980.7, 1559081980),
    ("1559081980", 1559081980), (" 1559081980 ", 1559081980), ("2019-05-28T22:19:40Z", 1559081980),
    ("2019-05-28T22:19:40+00:00", 1559081980),
])
def test_exp_accepts_numbers_numeric_strings_iso_times_and_null(raw: object, expected: int | None) -> None:
    parsed = parse_event(decode_event(key_vault_event_body(VAULT, "s", VERSION, exp=raw)))
    assert isinstance(parsed, SecretEvent)
    assert parsed.expires == expected


@pytest.mark.parametrize("raw", [True, "soon", "nan", "inf", -5, 1e300, [1], {"t": 1}, "2019-05-28T22:19:40"])
def test_unusable_exp_is_malformed(raw: object) -> None:
    parsed = parse_event(decode_event(key_vault_event_body(VAULT, "s", VERSION, exp=raw)))
    assert isinstance(parsed, IgnoredEvent)
    assert parsed.reason == "malformed"
    assert parsed.event_id == "evt-1"


def test_vault_url_keeps_the_port_of_a_local_vault() -> None:
    parsed = parse_event(decode_event(key_vault_event_body("https://127.0.0.1:8443/", "s", VERSION)))
    assert isinstance(parsed, SecretEvent)
    assert parsed.vault_url == "https://127.0.0.1:8443/"


def test_vault_name_falls_back_to_the_topic() -> None:
    body = key_vault_event_body(VAULT, "s", VERSION)
    del body["data"]["VaultName"]
    parsed = parse_event(decode_event(body))
    assert isinstance(parsed, SecretEvent)
    assert parsed.vault_name == "kv-rot"


def test_other_event_types_are_ignored_not_malformed() -> None:
    body = key_vault_event_body(VAULT, "s", VERSION, event_type="Microsoft.KeyVault.SecretNewVersionCreated")
    parsed = parse_event(decode_event(body))
    assert parsed == IgnoredEvent("unhandled_event_type", "not a secret near-expiry/expired event", "evt-1",
                                  "Microsoft.KeyVault.SecretNewVersionCreated")


def _mutated(mutate) -> IgnoredEvent | SecretEvent:  # type: ignore[no-untyped-def]
    body = key_vault_event_body(VAULT, "acct-active", VERSION)
    mutate(body)
    return parse_event(decode_event(body))


@pytest.mark.parametrize(("label", "mutate"), [
    ("data is a list", lambda b: b.update(data=[1, 2])),
    ("data is a string", lambda b: b.update(data="x")),
    ("data is null", lambda b: b.update(data=None)),
    ("no id in data", lambda b: b["data"].pop("Id")),
    ("certificate, not secret", lambda b: b["data"].update(ObjectType="Certificate")),
    ("id is http", lambda b: b["data"].update(Id=f"http://kv-rot.vault.azure.net/secrets/acct-active/{VERSION}")),
    ("id is a key", lambda b: b["data"].update(Id=f"https://kv-rot.vault.azure.net/keys/acct-active/{VERSION}")),
    ("id has a query", lambda b: b["data"].update(Id=f"{VAULT}secrets/acct-active/{VERSION}?x=1")),
    ("id has a bad port", lambda b: b["data"].update(Id=f"https://kv:99999/secrets/acct-active/{VERSION}")),
    ("name disagrees with id", lambda b: b["data"].update(ObjectName="other")),
    ("version disagrees with id", lambda b: b["data"].update(Version="ffff")),
    ("subject disagrees", lambda b: b.update(subject="other")),
    ("bad secret name", lambda b: b["data"].update(Id=f"{VAULT}secrets/a_b/{VERSION}", ObjectName="a_b")),
    ("version with slash", lambda b: b["data"].update(Id=f"{VAULT}secrets/acct-active/a/b", Version="a/b")),
    ("numeric name", lambda b: b["data"].update(ObjectName=5)),
    ("conflicting casing", lambda b: b["data"].update(objectName="zzz")),
    ("no event id", lambda b: b.pop("id")),
    ("event type not a string", lambda b: b.update(eventType=7)),
    ("bad vault name", lambda b: b["data"].update(VaultName="kv/../x")),
])
def test_malformed_events_are_ignored_with_a_reason(label: str, mutate) -> None:  # type: ignore[no-untyped-def]
    parsed = _mutated(mutate)
    assert isinstance(parsed, IgnoredEvent), label
    assert parsed.reason in {"malformed", "unhandled_event_type"}, label
    assert parsed.detail


def test_a_non_event_object_is_malformed() -> None:
    assert parse_event(object()).reason == "malformed"  # type: ignore[union-attr]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)
field_names = st.sampled_from(["Id", "id", "VaultName", "ObjectType", "ObjectName", "Version", "NBF", "EXP",
                               "objectName", "version", "exp", "nbf", "extra"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cloud=st.booleans(), event_type=st.sampled_from([NEAR_EXPIRY, EXPIRED, "Other", ""]),
       overrides=st.dictionaries(field_names, json_values, max_size=4),
       envelope=st.dictionaries(st.sampled_from(["id", "subject", "topic", "source", "data"]), json_values,
                                max_size=2))
def test_fuzzed_events_never_raise(cloud: bool, event_type: str, overrides: dict, envelope: dict) -> None:
    body = key_vault_event_body(VAULT, "acct-active", VERSION, cloud=cloud, event_type=event_type)
    body["data"].update(overrides)
    body.update(envelope)
    parsed = parse_event(decode_event(json.loads(json.dumps(body))))
    assert isinstance(parsed, SecretEvent | IgnoredEvent)
    if isinstance(parsed, SecretEvent):
        assert parsed.event_type in (NEAR_EXPIRY, EXPIRED)
        assert parsed.vault_url.startswith("https://") and parsed.vault_url.endswith("/")
