"""The settings object: environment parsing, errors, and what reaches the Kafka clients."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import pytest

from streams.runtime.app import faust_settings
from streams.settings import SecretStr, Settings, SettingsError


def test_reads_typed_values_from_the_environment() -> None:
    s = Settings.from_env({"DRIFTSTREAM_PARTITIONS": "8", "DRIFTSTREAM_JOIN_WINDOW_S": "3600",
                           "DRIFTSTREAM_BROKER": "kafka://a:9092,kafka://b:9093"})
    assert (s.partitions, s.join_window_s, s.bootstrap_servers) == (8, 3600.0, "a:9092,b:9093")
    assert Settings.from_env(s.to_env()) == s


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DRIFTSTREAM_PARTITIONS": "many"}, "DRIFTSTREAM_PARTITIONS='many': expected int"),
        ({"DRIFTSTREAM_PARTITIONS": "0"}, "DRIFTSTREAM_PARTITIONS=0: expected >= 1"),
        ({"DRIFTSTREAM_BROKER": "localhost:9092"}, "DRIFTSTREAM_BROKER='localhost:9092': expected kafka://host:port"),
        ({"DRIFTSTREAM_SECURITY_PROTOCOL": "TLS"}, "DRIFTSTREAM_SECURITY_PROTOCOL='TLS': expected one of PLAINTEXT, SSL"),
        ({"DRIFTSTREAM_SASL_MECHANISM": "GSSAPI"}, "DRIFTSTREAM_SASL_MECHANISM='GSSAPI': expected one of PLAIN"),
        ({"DRIFTSTREAM_GC_THRESHOLD": "10"}, "DRIFTSTREAM_GC_THRESHOLD=10: expected >= 100"),
        ({"DRIFTSTREAM_MALLOC_ARENA_MAX": "-1"}, "DRIFTSTREAM_MALLOC_ARENA_MAX=-1: expected >= 0"),
        ({"DRIFTSTREAM_LOG_FORMAT": "xml"}, "DRIFTSTREAM_LOG_FORMAT='xml': expected text or json"),
        ({"DRIFTSTREAM_LOG_LEVEL": "LOUD"}, "DRIFTSTREAM_LOG_LEVEL='LOUD': expected one of DEBUG, INFO"),
        ({"DRIFTSTREAM_SHUTDOWN_GRACE_S": "0"}, "DRIFTSTREAM_SHUTDOWN_GRACE_S=0.0: expected > 0"),
    ],
)
def test_bad_values_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace("+", r"\+")):
        Settings.from_env(env)


def test_secrets_never_show_in_reprs_or_redacted_dumps() -> None:
    s = Settings.from_env({"DRIFTSTREAM_SASL_PASSWORD": "hunter2", "DRIFTSTREAM_SASL_USERNAME": "svc",
                           "DRIFTSTREAM_SECURITY_PROTOCOL": "SASL_SSL"})
    assert "hunter2" not in repr(s) and "hunter2" not in str(s.redacted())
    assert s.sasl_password == SecretStr("hunter2")


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_over_ssl_reaches_aiokafka_and_faust(mechanism: str, tmp_path: Path) -> None:
    ca = Path(ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt")
    s = Settings.from_env({
        "DRIFTSTREAM_SECURITY_PROTOCOL": "SASL_SSL", "DRIFTSTREAM_SASL_MECHANISM": mechanism,
        "DRIFTSTREAM_SASL_USERNAME": "svc", "DRIFTSTREAM_SASL_PASSWORD": "s3cret",
        "DRIFTSTREAM_SSL_CAFILE": str(ca),
    })
    kwargs = s.kafka_client_kwargs()
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == mechanism
    assert (kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == ("svc", "s3cret")
    assert isinstance(kwargs["ssl_context"], ssl.SSLContext)
    credentials = faust_settings(s)["broker_credentials"]
    assert credentials.username == "svc" and credentials.mechanism.value == mechanism
    assert credentials.ssl_context is kwargs["ssl_context"] or isinstance(credentials.ssl_context, ssl.SSLContext)


def test_plaintext_has_no_security_arguments() -> None:
    kwargs = Settings.from_env({}).kafka_client_kwargs()
    assert kwargs == {"bootstrap_servers": "localhost:9092", "security_protocol": "PLAINTEXT"}
    assert "broker_credentials" not in faust_settings(Settings.from_env({}))


def test_sasl_without_ssl_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="streams.settings"):
        Settings.from_env({"DRIFTSTREAM_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "DRIFTSTREAM_SASL_USERNAME": "svc"})
    assert "SASL is configured without SSL" in caplog.text


def test_embedded_broker_timings_are_short_and_production_defaults_sane() -> None:
    prod = Settings.from_env({})
    assert (prod.session_timeout_s, prod.heartbeat_interval_s) == (30.0, 3.0)
    dev = prod.for_embedded_broker("kafka://127.0.0.1:1234")
    assert dev.session_timeout_s <= 6 and dev.heartbeat_interval_s <= 1 and dev.broker == "kafka://127.0.0.1:1234"
    conf = faust_settings(dev)
    assert conf["web_tables_enabled"] is False and conf["web_bind"] == "127.0.0.1"
    # Tansu holds a static member's join and sync 3 s each: there, a restart replaces its predecessor
    assert prod.static_membership is True and dev.static_membership is False


def test_an_instance_id_names_the_client_and_with_static_membership_the_group_instance() -> None:
    plain = Settings.from_env({})
    assert plain.instance_id is None and plain.client_id is None
    assert "consumer_group_instance_id" not in faust_settings(plain) and "broker_client_id" not in faust_settings(plain)
    static = Settings.from_env({"DRIFTSTREAM_INSTANCE_ID": "worker-1"})
    conf = faust_settings(static)
    assert (conf["consumer_group_instance_id"], conf["broker_client_id"]) == ("worker-1", "driftstream-worker-1")
    dynamic = Settings.from_env({"DRIFTSTREAM_INSTANCE_ID": "worker-1", "DRIFTSTREAM_STATIC_MEMBERSHIP": "false"})
    conf = faust_settings(dynamic)
    assert "consumer_group_instance_id" not in conf and conf["broker_client_id"] == "driftstream-worker-1"


@pytest.mark.parametrize(("env", "message"), [
    ({"DRIFTSTREAM_INSTANCE_ID": "worker 1"}, "DRIFTSTREAM_INSTANCE_ID='worker 1': expected 1-200 of A-Z a-z 0-9 . _ -"),
    ({"DRIFTSTREAM_INSTANCE_ID": "w" * 201}, "DRIFTSTREAM_INSTANCE_ID="),
    ({"DRIFTSTREAM_STATIC_MEMBERSHIP": "maybe"}, "DRIFTSTREAM_STATIC_MEMBERSHIP='maybe': expected a boolean"),
    ({"DRIFTSTREAM_HEARTBEAT_INTERVAL_S": "30"}, "DRIFTSTREAM_HEARTBEAT_INTERVAL_S=30.0: expected > 0 and below "
                                                  "DRIFTSTREAM_SESSION_TIMEOUT_S (30.0)"),
])
def test_bad_membership_settings_are_refused_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)
