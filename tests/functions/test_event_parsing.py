"""Key Vault event parsing: every schema variant the trigger can deliver, and garbage that must be ignored."""

from __future__ import annotations

import json

import pytest
from azure.functions import meta
from azure.functions.eventgrid import EventGridEventInConverter
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


def _deep(depth: int) -> str:
    """JSON text nested ``depth`` levels deep, written by hand (json.dumps itself recurses)."""
    return "".join("[" if level % 2 else '{"k":' for level in range(depth)) + "1" + "".join(
        "]" if level % 2 else "}" for level in reversed(range(depth))
    )


def _decode_with(body: dict[str, object], placeholder: str, raw_json: str) -> object:
    """The worker's decoding of a delivery whose ``placeholder`` string is replaced by ``raw_json``."""
    text = json.dumps(body).replace(json.dumps(placeholder), raw_json)
    return EventGridEventInConverter.decode(meta.Datum(text, "json"), trigger_metadata={})


# Depths the worker's own JSON decoder still accepts (deeper deliveries never reach the function).
DEEP = "__deep__"
hostile_values = st.one_of(
    st.integers(min_value=2**37, max_value=10**400) | st.integers(max_value=-1, min_value=-(10**400)),
    st.integers(min_value=50, max_value=900).map(lambda depth: (DEEP, depth)),
    st.integers(min_value=200, max_value=2_000_000).map(lambda n: "x" * n),
    st.integers(min_value=200, max_value=5000).map(lambda n: "9" * n),
    st.sampled_from([float("nan"), float("inf"), float("-inf"), 1e300, -1e300]),
)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(field=st.sampled_from(["EXP", "NBF", "exp", "Id", "ObjectName", "Version", "VaultName"]),
       value=hostile_values)
def test_hostile_sizes_depths_and_numbers_are_malformed_never_an_exception(field: str, value: object) -> None:
    """Found by adversarial testing: EXP = 10**400 raised OverflowError out of the handler, so Event Grid
    would have retried the event for 24 h and dead-lettered it. Any shape is an answer, never a raise."""
    body = key_vault_event_body(VAULT, "acct-active", VERSION)
    if isinstance(value, tuple):
        body["data"][field] = DEEP
        event = _decode_with(body, DEEP, _deep(value[1]))
    else:
        body["data"][field] = value
        event = decode_event(body)
    parsed = parse_event(event)
    assert isinstance(parsed, IgnoredEvent)
    assert parsed.reason == "malformed"


@pytest.mark.parametrize("raw", [10**30, -(10**30), 2**37, "9" * 65, "9" * 5000])
def test_huge_exp_is_malformed(raw: object) -> None:
    parsed = parse_event(decode_event(key_vault_event_body(VAULT, "s", VERSION, exp=raw)))
    assert isinstance(parsed, IgnoredEvent) and parsed.reason == "malformed"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(where=st.sampled_from(["data", "id", "eventType", "subject", "topic"]),
       depth=st.integers(min_value=2, max_value=900))
def test_deeply_nested_or_mistyped_envelopes_are_malformed(where: str, depth: int) -> None:
    body = key_vault_event_body(VAULT, "acct-active", VERSION)
    body[where] = DEEP
    parsed = parse_event(_decode_with(body, DEEP, _deep(depth)))
    assert isinstance(parsed, IgnoredEvent)
    assert parsed.reason == "malformed"


def test_ignored_events_are_logged_clipped_whatever_their_size(caplog: pytest.LogCaptureFixture) -> None:
    """Found by adversarial testing: a 1 MB eventType became a 1,000,172-character log record."""
    from triggers.event_handler import handle_key_vault_event

    body = key_vault_event_body(VAULT, "acct-active", VERSION, event_type="T" * 1_000_000,
                                event_id="I" * 1_000_000)
    caplog.set_level("INFO", logger="rotation.functions")
    handle_key_vault_event(decode_event(body), runtime=None)  # type: ignore[arg-type]  # never reached
    records = [r.getMessage() for r in caplog.records if r.getMessage().startswith("rotation.event_ignored")]
    assert len(records) == 1
    assert len(records[0]) < 1_000
    logged = json.loads(records[0].split(" ", 1)[1])
    assert logged["reason"] == "unhandled_event_type"
    assert logged["event_type"].startswith("TTTT") and logged["event_id"].startswith("IIII")
