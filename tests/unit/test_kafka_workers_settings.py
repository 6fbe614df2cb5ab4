"""Coming from the Kafka workers: their consumer settings and message ids, without services."""

from __future__ import annotations

import pytest

from tailrace.errors import ConfigurationError
from tailrace.streams.consumer.config import ConsumerConfig, consumer_env, parse_properties
from tailrace.streams.consumer.message import IdSource, body_field, parse_id_source


def settings(environ: dict[str, str], **kafka: str) -> dict[str, object]:
    config = ConsumerConfig(topic="t", group="g", bootstrap_servers="b:9092", kafka=kafka)
    return config.consumer_settings(environ)


def test_auto_offset_reset_defaults_to_earliest_and_follows_the_environment() -> None:
    assert settings({})["auto.offset.reset"] == "earliest"
    assert settings({"KAFKA_AUTO_OFFSET_RESET": "latest"})["auto.offset.reset"] == "latest"


def test_kafka_consumer_variables_are_librdkafka_properties_but_the_group() -> None:
    environ = {
        "KAFKA_CONSUMER_GROUP": "message_router_group",
        "KAFKA_CONSUMER_FETCH_MIN_BYTES": "1048576",
        "KAFKA_CONSUMER_FETCH_WAIT_MAX_MS": "500",
    }
    assert consumer_env(environ) == {"fetch.min.bytes": "1048576", "fetch.wait.max.ms": "500"}
    found = settings(environ)
    assert found["fetch.min.bytes"] == "1048576" and found["group.id"] == "g"


def test_consumer_config_wins_over_the_environment() -> None:
    overrides = parse_properties(["fetch.min.bytes=1", "auto.offset.reset=latest"], "--x")
    found = settings(
        {"KAFKA_CONSUMER_FETCH_MIN_BYTES": "99", "KAFKA_AUTO_OFFSET_RESET": "earliest"},
        **overrides,
    )
    assert found["fetch.min.bytes"] == "1" and found["auto.offset.reset"] == "latest"


def test_auto_commit_is_refused_loudly() -> None:
    # The file-merge worker committed automatically: here offsets follow the handler.
    with pytest.raises(ConfigurationError, match=r"enable\.auto\.commit cannot be turned on"):
        settings({"KAFKA_CONSUMER_ENABLE_AUTO_COMMIT": "true"})
    assert settings({"KAFKA_CONSUMER_ENABLE_AUTO_COMMIT": "false"})["enable.auto.commit"] is False


def test_a_pair_without_equals_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="expected NAME=VALUE"):
        parse_properties(["fetch.min.bytes"], "--consumer-config")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("auto", (IdSource.AUTO, None)),
        ("offset", (IdSource.OFFSET, None)),
        ("body:message_id", (IdSource.BODY, "message_id")),
        ("body:meta.id", (IdSource.BODY, "meta.id")),
    ],
)
def test_message_id_sources(text: str, expected: tuple[IdSource, str | None]) -> None:
    assert parse_id_source(text) == expected


@pytest.mark.parametrize("text", ["body", "body:", "key:x", "payload:id", "nothing"])
def test_bad_message_id_sources_are_refused(text: str) -> None:
    with pytest.raises(ConfigurationError, match="body:FIELD"):
        parse_id_source(text)


def test_body_field_reads_the_reference_message_shape() -> None:
    body = b'{"message_id": "550e8400-e29b", "conversation_id": 456, "meta": {"n": 7}}'
    assert body_field(body, "message_id") == "550e8400-e29b"
    assert body_field(body, "conversation_id") == "456"
    assert body_field(body, "meta.n") == "7"
    assert body_field(body, "meta") == '{"n":7}'
    assert body_field(body, "absent") is None
    assert body_field(b"not json", "message_id") is None
    assert body_field(b'["a list"]', "message_id") is None
    assert body_field(None, "message_id") is None


def test_their_java_client_names_are_refused_with_librdkafkas_equivalent() -> None:
    """kafka-python's `max_poll_records` and `fetch_max_wait_ms`, as KAFKA_CONSUMER_*:
    librdkafka ignores the first without a word and does not know the second."""
    with pytest.raises(ConfigurationError, match="--batch-size"):
        settings({"KAFKA_CONSUMER_MAX_POLL_RECORDS": "500"})
    with pytest.raises(ConfigurationError, match=r"fetch\.wait\.max\.ms"):
        settings({}, **{"fetch.max.wait.ms": "500"})


def test_a_value_librdkafka_refuses_is_one_line_naming_it() -> None:
    from tailrace.streams.consumer.config import kafka_consumer

    found = settings({"KAFKA_AUTO_OFFSET_RESET": "sideways"})
    with pytest.raises(ConfigurationError, match=r"sideways.*KAFKA_AUTO_OFFSET_RESET"):
        kafka_consumer({**found, "bootstrap.servers": "127.0.0.1:1"})
