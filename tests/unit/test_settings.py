from __future__ import annotations

import json
from datetime import timedelta

import pytest

from rotation.errors import SettingsError
from rotation.model import VerifyMode, table_key
from shared.settings import APP_SETTINGS, load_settings
from testkit.fakes import rid

BASE = {"KEY_VAULT_URL": "https://kv.vault.azure.net/", "AzureWebJobsStorage": "UseDevelopmentStorage=true"}


def env(targets: object, **extra: str) -> dict[str, str]:
    return {**BASE, "ROTATION_TARGETS": json.dumps(targets), **extra}


def test_defaults_and_durations() -> None:
    settings = load_settings(
        env(
            [
                {"resourceId": rid("a")},
                {
                    "resourceId": rid("b"),
                    "secretPrefix": "bee",
                    "rotationPeriod": "P7D",
                    "drainTime": "PT5S",
                    "verify": "none",
                },
            ]
        )
    )
    a, b = settings.targets
    assert (a.secret_prefix, a.rotation_period, a.drain_time, a.verify) == (
        "a",
        timedelta(days=30),
        timedelta(hours=30),  # issue 14: the default covers the 24 h Key Vault reference refetch + 6 h
        VerifyMode.DATAPLANE,
    )
    assert (b.secret_prefix, b.rotation_period, b.drain_time, b.verify) == (
        "bee",
        timedelta(days=7),
        timedelta(seconds=5),
        VerifyMode.NONE,
    )
    assert settings.arm_endpoint == "https://management.azure.com"
    assert settings.verify_timeout == timedelta(minutes=10) and settings.emergency_drain_time == timedelta(0)
    assert (settings.sweep_concurrency, settings.arm_writes_per_second, settings.arm_write_burst) == (
        16,
        5,
        100,
    )
    assert settings.verify_challenge_resource is True and settings.fanout is False


@pytest.mark.parametrize(
    ("targets", "extra", "message"),
    [
        ("not json", {}, "ROTATION_TARGETS is not valid JSON"),
        ([], {}, "non-empty JSON list"),
        ([{"secretPrefix": "x"}], {}, "ROTATION_TARGETS[0]: resourceId is required"),
        ([{"resourceId": "/subscriptions/x/resourceGroups/r"}], {}, "ROTATION_TARGETS[0]"),
        ([{"resourceId": rid("a"), "drainTime": "soon"}], {}, "drainTime"),
        ([{"resourceId": rid("a"), "rotationPeriod": "P1M"}], {}, "years or months"),
        ([{"resourceId": rid("a"), "verify": "maybe"}], {}, "verify must be"),
        ([{"resourceId": rid("a"), "secretPrefix": "bad_name"}], {}, "secretPrefix"),
        ([{"resourceId": rid("a"), "colour": "red"}], {}, "unknown field"),
        ([{"resourceId": rid("a")}, {"resourceId": rid("a").upper()}], {}, "ROTATION_TARGETS[1]"),
        ([{"resourceId": rid("a")}, {"resourceId": rid("b"), "secretPrefix": "A"}], {}, "already used"),
        ([{"resourceId": rid("a"), "drainTime": "P31D"}], {}, "shorter than rotationPeriod"),
        ([{"resourceId": rid("a")}], {"SWEEP_CONCURRENCY": "lots"}, "SWEEP_CONCURRENCY"),
        ([{"resourceId": rid("a")}], {"VERIFY_TIMEOUT": "10m"}, "VERIFY_TIMEOUT"),
        ([{"resourceId": rid("a")}], {"KEY_VAULT_URL": "http://kv"}, "KEY_VAULT_URL"),
        ([{"resourceId": rid("a")}], {"KEY_VAULT_VERIFY_CHALLENGE_RESOURCE": "nah"}, "KEY_VAULT_VERIFY"),
        # 251 per 10 s would leave Key Vault's 300 no room for a write that follows its token by 1 s
        ([{"resourceId": rid("a")}], {"KEY_VAULT_SECRET_WRITES_PER_10S": "251"}, "outside 1..250"),
    ],
)
def test_bad_settings_fail_fast_naming_the_entry(
    targets: object, extra: dict[str, str], message: str
) -> None:
    values = {
        **BASE,
        "ROTATION_TARGETS": targets if isinstance(targets, str) else json.dumps(targets),
        **extra,
    }
    with pytest.raises(SettingsError) as error:
        load_settings(values)
    assert message in str(error.value)


def test_missing_required_and_storage() -> None:
    with pytest.raises(SettingsError, match="ROTATION_TARGETS is required"):
        load_settings(BASE)
    with pytest.raises(SettingsError, match="AzureWebJobsStorage"):
        load_settings(
            {
                "KEY_VAULT_URL": BASE["KEY_VAULT_URL"],
                "ROTATION_TARGETS": json.dumps([{"resourceId": rid("a")}]),
            }
        )
    identity = load_settings(
        {
            "KEY_VAULT_URL": BASE["KEY_VAULT_URL"],
            "ROTATION_TARGETS": json.dumps([{"resourceId": rid("a")}]),
            "AzureWebJobsStorage__tableServiceUri": "https://st.table.core.windows.net",
        }
    )
    assert identity.table_service_uri and identity.storage_connection_string is None


def test_app_settings_lists_every_name_once() -> None:
    names = [spec.name for spec in APP_SETTINGS]
    assert len(names) == len(set(names))
    assert {
        "ROTATION_TARGETS",
        "KEY_VAULT_URL",
        "ARM_ENDPOINT",
        "VERIFY_TIMEOUT",
        "EMERGENCY_DRAIN_TIME",
        "KEY_VAULT_VERIFY_CHALLENGE_RESOURCE",
        "ARM_WRITES_PER_SECOND",
        "ARM_WRITE_BURST",
    } <= set(names)
    # ROTATION_TARGETS is required only without discovery (issue 13): load_settings checks that pair.
    assert [s.name for s in APP_SETTINGS if s.required] == ["KEY_VAULT_URL"]


def test_table_keys_have_no_forbidden_characters() -> None:
    key = table_key(rid("Acc") + "#?\\")
    assert not set("/\\#?") & set(key)
    assert table_key(rid("ACC")) == table_key(rid("acc"))


def test_a_target_probe_override_is_parsed() -> None:
    path = "/language/:analyze-text/jobs?api-version=2023-04-01"
    probe = {"method": "get", "path": path, "header": "api-key"}
    target = load_settings(env([{"resourceId": rid("a"), "probe": probe}])).targets[0]
    assert target.probe is not None
    assert (target.probe.method, target.probe.header) == ("GET", "api-key")
    assert target.probe.path == "language/:analyze-text/jobs?api-version=2023-04-01"
    assert load_settings(env([{"resourceId": rid("b")}])).targets[0].probe is None


@pytest.mark.parametrize(
    ("probe", "message"),
    [
        ("GET /", "probe must be an object"),
        ({"method": "GET", "path": "x", "header": "api-key", "body": "{}"}, "unknown field(s) ['body']"),
        ({"method": "DELETE", "path": "x", "header": "api-key"}, "must be one of GET, HEAD, POST"),
        ({"path": "x", "header": "api-key"}, "probe.method must be one of"),
        ({"method": "GET", "header": "api-key"}, "probe.path must be a non-empty path"),
        ({"method": "GET", "path": "a b", "header": "api-key"}, "probe.path must be a non-empty path"),
        ({"method": "GET", "path": "https://evil.example/x", "header": "api-key"}, "relative to the account"),
        ({"method": "GET", "path": "//evil.example/x", "header": "api-key"}, "relative to the account"),
        ({"method": "GET", "path": "../other/x", "header": "api-key"}, "relative to the account"),
        ({"method": "GET", "path": "x"}, "probe.header must name the key header"),
        ({"method": "GET", "path": "x", "header": "api key:"}, "probe.header must name the key header"),
    ],
)
def test_bad_probe_overrides_fail_with_a_message_naming_the_entry(probe: object, message: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(env([{"resourceId": rid("a")}, {"resourceId": rid("b"), "probe": probe}]))
    assert str(raised.value).startswith(f"ROTATION_TARGETS[1] ({rid('b')}): probe")
    assert message in str(raised.value)


def test_a_probe_override_needs_dataplane_verification() -> None:
    probe = {"method": "POST", "path": "sts/v1.0/issueToken", "header": "Ocp-Apim-Subscription-Key"}
    with pytest.raises(SettingsError, match="probe is only used with verify 'dataplane'"):
        load_settings(env([{"resourceId": rid("a"), "verify": "none", "probe": probe}]))
