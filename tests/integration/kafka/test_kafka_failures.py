"""The Kafka sink when the broker or the producer fails: a fatal producer error and an
unavailable broker raise `SinkError` (never dead letters), a new sink resends from the
caller's checkpoint and the topic, read back, holds every event."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tailrace.pipeline.sinks.base import SinkError
from tailrace.pipeline.sinks.kafka import KafkaSink
from tests.kafka_broker import TansuBroker

from .faults import inject_fatal_error

pytestmark = pytest.mark.kafka


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[TansuBroker]:
    """An in-memory broker this test may freeze; thawed before it stops."""
    broker = TansuBroker(tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.thaw()
        broker.kill()


def test_a_fatal_producer_error_raises_and_a_new_producer_resends(
    kafka_broker: TansuBroker, kafka_topic: str
) -> None:
    events = [b"event %d" % i for i in range(3_000)]
    client_id = f"fatal-{uuid.uuid4().hex[:8]}"
    sink = KafkaSink(
        kafka_broker.bootstrap, kafka_topic, config={"client.id": client_id}, environ={}
    )
    sink.write(events[:1_000], keys=[str(i) for i in range(1_000)])
    sink.flush()  # the caller's checkpoint: 1,000 events
    sink.write(events[1_000:], keys=[str(i) for i in range(1_000, 3_000)], routes=["r"] * 2_000)
    inject_fatal_error(sink._producer, client_id)
    # librdkafka may report the fatal error itself only after the flush it broke (which then
    # fails with a purge or a bare SystemError): either way the sink is broken and the file
    # resumes from its checkpoint with a new sink.
    with pytest.raises(SinkError, match=r"fatal producer error|sink unavailable"):
        sink.flush()
    # Nothing past the checkpoint counted, nothing turned into a dead letter.
    assert (sink.counters.events, sink.failed, sink.take_failed()) == (1_000, 0, [])
    with pytest.raises(SinkError, match=r"fatal producer error|sink unavailable"):
        sink.write([b"more"])
    sink.close()
    # What the caller does: a new sink, the events since the checkpoint again.
    with KafkaSink(kafka_broker.bootstrap, kafka_topic, environ={}) as again:
        again.write(events[1_000:], keys=[str(i) for i in range(1_000, 3_000)])
        again.flush()
        assert (again.counters.events, again.take_failed()) == (2_000, [])
    got = [r.value for r in kafka_broker.consume_all(kafka_topic, timeout=30)]
    assert set(got) == set(events)  # nothing lost
    assert len(got) - len(events) <= 2_000  # duplicates: at most what followed the checkpoint


def test_a_broker_that_stops_answering_is_waited_for_then_given_up_on(
    own_broker: TansuBroker, caplog: pytest.LogCaptureFixture
) -> None:
    own_broker.create_topic("frozen")
    sink = KafkaSink(own_broker.bootstrap, "frozen", environ={}, outage_timeout_s=3.0)
    sink.write([b"before"])
    sink.flush()
    own_broker.freeze()
    sink.write([b"event %d" % i for i in range(500)])
    with caplog.at_level(logging.WARNING, logger="tailrace.sink.kafka"):
        with pytest.raises(SinkError, match=r"sink unavailable.*nothing acknowledged for"):
            sink.flush()
    assert any("sink unavailable" in r.getMessage() for r in caplog.records)
    assert (sink.counters.events, sink.take_failed()) == (1, [])
    sink.close()


def test_an_outage_shorter_than_the_timeout_is_waited_out(own_broker: TansuBroker) -> None:
    own_broker.create_topic("paused")
    events = [b"event %d" % i for i in range(5_000)]
    with KafkaSink(own_broker.bootstrap, "paused", environ={}, outage_timeout_s=120) as sink:
        sink.write(events[:1_000])
        sink.flush()
        own_broker.freeze()
        sink.write(events[1_000:])
        sink._producer.flush(2.0)  # the producer tries, the broker says nothing
        assert len(sink._producer) > 0
        own_broker.thaw()
        sink.flush()
        assert (sink.counters.events, sink.take_failed()) == (len(events), [])
    got = [r.value for r in own_broker.consume_all("paused", expected=len(events))]
    assert got == events


def test_the_outage_timeout_comes_from_the_environment() -> None:
    sink = KafkaSink("127.0.0.1:9", "t", environ={"KAFKA_OUTAGE_TIMEOUT_S": "42"})
    assert sink.outage_timeout_s == 42
    sink.close()
    with pytest.raises(SinkError, match="KAFKA_OUTAGE_TIMEOUT_S"):
        KafkaSink("127.0.0.1:9", "t", environ={"KAFKA_OUTAGE_TIMEOUT_S": "soon"})
