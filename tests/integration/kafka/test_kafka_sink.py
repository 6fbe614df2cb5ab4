"""The Kafka sink against a real broker (Tansu): delivery is checked by reading it back."""

from __future__ import annotations

import uuid
from collections import defaultdict

import pytest

from tailrace.kafka_client import config_from_env
from tailrace.pipeline.sinks.base import SinkError
from tailrace.pipeline.sinks.kafka import ROUTE_HEADER, KafkaSink
from tailrace.pipeline.sinks.url import parse_sink_url
from tests.kafka_broker import TansuBroker
from tests.services import free_port

pytestmark = pytest.mark.kafka

SECRET = "kafka-test-secret-Vq7mR2xL9pZw"


def _sink(broker: TansuBroker, topic: str, **config: str) -> KafkaSink:
    # An empty environment: the host's KAFKA_* variables must not leak into the tests.
    return KafkaSink(broker.bootstrap, topic, config=config or None, environ={})


def test_events_arrive_byte_identical_with_key_and_route_in_order(
    kafka_broker: TansuBroker, kafka_topic: str
) -> None:
    batch = [b'{"a": 1}', b"\xff\xfe not utf-8", b"with\nnewline", b"", b'{"z": "\xc3\xa9"}']
    keys = ["m-1", None, "m-3", "m-4", "m-\u00e9"]
    routes = ["c1,c2", "c3", None, "c4", None]
    with _sink(kafka_broker, kafka_topic) as sink:
        sink.write(batch[:2], keys=keys[:2], routes=routes[:2])
        sink.write(batch[2:], keys=keys[2:], routes=routes[2:])
        sink.flush()
        assert sink.take_failed() == []

    records = kafka_broker.consume_all(kafka_topic, expected=len(batch))
    assert [r.value or b"" for r in records] == batch
    assert [r.offset for r in records] == sorted(r.offset for r in records)
    assert [r.key for r in records] == [k.encode() if k else None for k in keys]
    assert [r.header(ROUTE_HEADER) for r in records] == [r.encode() if r else None for r in routes]
    assert [len(r.headers) for r in records] == [1, 1, 0, 1, 0]


def test_plain_writes_as_the_dead_letter_output_has_them(kafka_broker: TansuBroker) -> None:
    topic = f"tailrace-{uuid.uuid4().hex[:8]}.deadletter"
    kafka_broker.create_topic(topic)
    records = [b'{"file": "a.ndjson", "line": %d}' % i for i in range(3)]
    with _sink(kafka_broker, topic) as sink:
        sink.write(records)
    arrived = kafka_broker.consume_all(topic, expected=3)
    assert [(r.value, r.key, r.headers) for r in arrived] == [(v, None, ()) for v in records]


def test_counters_count_only_acknowledged_events(
    kafka_broker: TansuBroker, kafka_topic: str
) -> None:
    batch = [b"x" * n for n in range(1, 101)]
    with _sink(kafka_broker, kafka_topic) as sink:
        sink.write(batch, keys=[str(i) for i in range(100)])
        assert (sink.counters.events, sink.counters.bytes) == (0, 0)
        sink.flush()
        assert (sink.counters.events, sink.counters.bytes) == (100, sum(range(1, 101)))
        sink.flush()  # nothing new: nothing counted twice
        assert sink.counters.events == 100
        assert sink.failed == 0


def test_same_key_keeps_its_order_across_partitions(kafka_broker: TansuBroker) -> None:
    topic = f"tailrace-{uuid.uuid4().hex[:12]}"
    kafka_broker.create_topic(topic, partitions=3)
    keys = [f"id-{i % 7}" for i in range(700)]
    batch = [f"{key}:{i}".encode() for i, key in enumerate(keys)]
    with _sink(kafka_broker, topic) as sink:
        for start in range(0, 700, 100):
            sink.write(batch[start : start + 100], keys=keys[start : start + 100])

    records = kafka_broker.consume_all(topic, expected=700)
    assert sorted(r.value or b"" for r in records) == sorted(batch)
    by_key: dict[bytes, list[bytes]] = defaultdict(list)
    partitions: dict[bytes, set[int]] = defaultdict(set)
    for record in records:
        assert record.key is not None
        by_key[record.key].append(record.value or b"")
        partitions[record.key].add(record.partition)
    for key, values in by_key.items():
        assert values == [v for v in batch if v.startswith(key + b":")]
        assert len(partitions[key]) == 1


def test_50k_events_round_trip(kafka_broker: TansuBroker, kafka_topic: str) -> None:
    count = 50_000
    batch = [b'{"n": %d, "pad": "%s"}' % (i, b"p" * (i % 200)) for i in range(count)]
    keys = [f"msg-{i}" for i in range(count)]
    routes = [f"conn-{i % 3}" for i in range(count)]
    with _sink(kafka_broker, kafka_topic) as sink:
        for start in range(0, count, 2_000):
            end = start + 2_000
            sink.write(batch[start:end], keys=keys[start:end], routes=routes[start:end])
        sink.flush()
        assert sink.counters.events == count
        assert sink.counters.bytes == sum(map(len, batch))

    records = kafka_broker.consume_all(kafka_topic, expected=count, timeout=60)
    assert len(records) == count
    assert [r.value for r in records] == batch
    assert [r.key for r in records] == [k.encode() for k in keys]
    assert [r.header(ROUTE_HEADER) for r in records] == [r.encode() for r in routes]


def test_a_full_queue_waits_for_room_instead_of_failing(
    kafka_broker: TansuBroker, kafka_topic: str
) -> None:
    batch = [b"event %d" % i for i in range(3_000)]
    with _sink(
        kafka_broker, kafka_topic, **{"queue.buffering.max.messages": "50", "linger.ms": "1"}
    ) as sink:
        sink.write(batch, routes=["c"] * len(batch))
        sink.flush()
        assert sink.counters.events == len(batch)
    records = kafka_broker.consume_all(kafka_topic, expected=len(batch))
    assert [r.value for r in records] == batch


def test_unreachable_broker_makes_the_sink_unavailable_not_dead_letters() -> None:
    port = free_port()  # nothing listens there
    sink = KafkaSink(
        f"127.0.0.1:{port}", "nowhere", config={"message.timeout.ms": "1500"}, environ={}
    )
    sink.write([b"a", b"b", b"c"], keys=["k1", None, "k3"], routes=["r1", "r2", None])
    # Timed out for want of a broker: the sink is unavailable, the events are not bad input.
    with pytest.raises(SinkError, match=r"sink unavailable.*resumes from its checkpoint"):
        sink.flush()
    assert (sink.counters.events, sink.failed, sink.take_failed()) == (0, 0, [])
    assert sink.broken
    with pytest.raises(SinkError, match="sink unavailable"):
        sink.write([b"d"])
    sink.close()  # at once: what it held is resent from the caller's checkpoint
    assert sink.closed and sink.take_failed() == []


def test_a_message_too_large_is_failed_and_the_rest_delivered(
    kafka_broker: TansuBroker, kafka_topic: str
) -> None:
    batch = [b"small 1", b"L" * 5_000, b"small 2"]
    with _sink(kafka_broker, kafka_topic, **{"message.max.bytes": "2000"}) as sink:
        sink.write(batch, keys=["1", "2", "3"], routes=["a", "b", "c"])
        sink.flush()
        assert (sink.counters.events, sink.counters.bytes) == (2, 14)
        [failed] = sink.take_failed()
    assert (failed.value, failed.key, failed.route) == (batch[1], "2", "b")
    assert "too large" in failed.error.lower()
    records = kafka_broker.consume_all(kafka_topic, expected=2)
    assert [r.value for r in records] == [b"small 1", b"small 2"]


@pytest.mark.slow  # Tansu waits about 5 s for connected clients before it stops
def test_broker_stopped_mid_stream_then_back_delivers_everything(
    durable_kafka_broker: TansuBroker,
) -> None:
    broker = durable_kafka_broker
    broker.create_topic("restarted")
    batch = [b"event %d" % i for i in range(30_000)]
    keys = [f"id-{i}" for i in range(30_000)]
    with _sink(broker, "restarted") as sink:
        sink.write(batch[:1_000], keys=keys[:1_000])
        sink.flush()
        sink.write(batch[1_000:20_000], keys=keys[1_000:20_000])  # in flight or queued
        broker.stop()
        sink.write(batch[20_000:], keys=keys[20_000:])  # queued while the broker is away
        broker.start()
        sink.flush()
        assert sink.take_failed() == []
        assert sink.counters.events == len(batch)

    records = broker.consume_all("restarted", expected=len(batch), timeout=60)
    # Nothing lost, in order; the idempotent producer's retries add no duplicate.
    assert [r.value for r in records] == batch


def test_events_written_while_the_broker_is_down_arrive_when_it_is_back(
    durable_kafka_broker: TansuBroker,
) -> None:
    # Killed between flushes, with nothing in flight. (Killed during a produce request,
    # Tansu 0.6 can lose the batch yet answer its retry "duplicate sequence", which the
    # producer takes as stored: no client can tell, so no test here depends on that.)
    broker = durable_kafka_broker
    broker.create_topic("crashed")
    batch = [b"event %d" % i for i in range(2_000)]
    with _sink(broker, "crashed") as sink:
        sink.write(batch[:1_000], routes=["r"] * 1_000)
        sink.flush()
        broker.kill()
        sink.write(batch[1_000:], routes=["r"] * 1_000)
        broker.start()
        sink.flush()
        assert (sink.counters.events, sink.failed) == (len(batch), 0)

    records = broker.consume_all("crashed", expected=len(batch))
    assert [r.value for r in records] == batch


def test_topics_kept_by_a_durable_broker_across_restart(
    durable_kafka_broker: TansuBroker,
) -> None:
    durable_kafka_broker.create_topic("kept")
    with _sink(durable_kafka_broker, "kept") as sink:
        sink.write([b"before"])
    durable_kafka_broker.restart(crash=True)
    assert [r.value for r in durable_kafka_broker.consume_all("kept", expected=1)] == [b"before"]


def test_close_twice_is_fine_and_write_after_close_raises(
    kafka_broker: TansuBroker, kafka_topic: str
) -> None:
    sink = _sink(kafka_broker, kafka_topic)
    sink.write([b"one"])
    sink.close()
    sink.close()
    assert sink.closed
    assert sink.counters.events == 1  # close flushed
    with pytest.raises(SinkError, match=kafka_topic):
        sink.write([b"two"])
    with pytest.raises(SinkError, match="after close"):
        sink.flush()


def test_keys_and_routes_must_match_the_batch(kafka_broker: TansuBroker, kafka_topic: str) -> None:
    with _sink(kafka_broker, kafka_topic) as sink:
        with pytest.raises(ValueError, match="parallel"):
            sink.write([b"a", b"b"], keys=["only one"])
        with pytest.raises(ValueError, match="parallel"):
            sink.write([b"a"], routes=["r", "s"])
        sink.flush()
        assert sink.counters.events == 0


def test_from_spec_writes_where_the_url_says(kafka_broker: TansuBroker, kafka_topic: str) -> None:
    spec = parse_sink_url(f"kafka://{kafka_broker.bootstrap}/{kafka_topic}")
    with KafkaSink.from_spec(spec) as sink:
        assert sink.name == f"kafka sink {kafka_broker.bootstrap}/{kafka_topic}"
        sink.write([b"via url"], keys=["u1"])
    assert [r.value for r in kafka_broker.consume_all(kafka_topic, expected=1)] == [b"via url"]


def test_from_spec_refuses_other_kinds() -> None:
    with pytest.raises(SinkError, match="not a kafka sink"):
        KafkaSink.from_spec(parse_sink_url("null:"))


def test_settings_from_the_environment() -> None:
    environ = {
        "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "KAFKA_SASL_MECHANISM": "PLAIN",
        "KAFKA_SASL_USERNAME": "tailrace",
        "KAFKA_SASL_PASSWORD": SECRET,
        "KAFKA_UNRELATED": "ignored",
        "KAFKA_SASL_OAUTHBEARER_CONFIG": "",
    }
    assert config_from_env(environ) == {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "PLAIN",
        "sasl.username": "tailrace",
        "sasl.password": SECRET,
    }
    assert config_from_env({"KAFKA_SASL_USERNAME": ""}) == {}


def test_errors_name_the_sink_and_never_show_the_password() -> None:
    environ = {
        "KAFKA_SECURITY_PROTOCOL": "no-such-protocol",
        "KAFKA_SASL_USERNAME": "tailrace",
        "KAFKA_SASL_PASSWORD": SECRET,
    }
    with pytest.raises(SinkError) as caught:
        KafkaSink("127.0.0.1:9", "events", environ=environ)
    message = str(caught.value)
    assert "kafka sink 127.0.0.1:9/events" in message
    assert "security.protocol" in message
    assert SECRET not in message
    with pytest.raises(SinkError) as caught:
        KafkaSink("127.0.0.1:9", "events", config={"sasl.password": SECRET, "linger.ms": "x"})
    assert SECRET not in str(caught.value)
    assert "127.0.0.1:9/events" in str(caught.value)


def test_a_sink_with_credentials_shows_none(caplog: pytest.LogCaptureFixture) -> None:
    environ = {
        "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "KAFKA_SASL_MECHANISM": "PLAIN",
        "KAFKA_SASL_USERNAME": "tailrace",
        "KAFKA_SASL_PASSWORD": SECRET,
    }
    port = free_port()
    config = {"message.timeout.ms": "500"}
    with (
        caplog.at_level("DEBUG"),
        KafkaSink(f"127.0.0.1:{port}", "events", config=config, environ=environ) as sink,
    ):
        sink.write([b"x"], keys=["k"])
        with pytest.raises(SinkError, match="sink unavailable") as raised:
            sink.flush()
        shown = [repr(sink), sink.name, str(raised.value)]
    assert all(SECRET not in text for text in shown)
    assert SECRET not in caplog.text
