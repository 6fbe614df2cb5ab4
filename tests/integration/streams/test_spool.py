"""The circuit-broken producer through a broker outage, for each kind of spool: every
message arrives exactly once, in order per key."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException

from tailrace.streams.producer import BreakerProducer, BreakerSettings
from tailrace.streams.spool import Spool, Spooled, open_spool
from tailrace.streams.spool.circuit import CircuitState
from tests.integration.streams.outbox_support import migrated_schema, per_key, redis_url
from tests.kafka_broker import Record, TansuBroker
from tests.s3_server import MotoS3
from tests.waiting import wait_until

pytestmark = pytest.mark.kafka

MESSAGES = 10_000
KEYS = 50
FAST = BreakerSettings(delivery_timeout_s=5.0, cooldown_s=0.1, max_cooldown_s=1.0)


@pytest.fixture(params=["redis", "postgres", "disk"])
def spool(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Spool]:
    name = f"test-{uuid.uuid4().hex[:8]}"
    if request.param == "redis":
        opened = open_spool(redis_url(), name)
        yield opened
        opened.remove(opened.head(1_000_000))  # a failed test leaves nothing behind
        opened.close()
    elif request.param == "postgres":
        with migrated_schema() as url:
            opened = open_spool(url, name)
            yield opened
            opened.close()
    else:
        opened = open_spool(f"file://{tmp_path / 'spool'}", name)
        yield opened
        opened.close()


def _messages(start: int, stop: int) -> list[tuple[str, bytes, bytes, None]]:
    return [("", b"%d" % n, b"key-%d" % (n % KEYS), None) for n in range(start, stop)]


def _create_topic(broker: TansuBroker, topic: str) -> None:
    # The producer's metadata requests may have Tansu create it first (one partition).
    try:
        broker.create_topic(topic, partitions=3)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise


def _check(records: list[Record], count: int) -> None:
    values = [int(r.value or b"") for r in records]
    assert sorted(values) == list(range(count)), "lost or repeated messages"
    for key, got in per_key(records).items():
        numbers = [int(v or b"") for v in got]
        assert numbers == sorted(numbers), f"{key!r} out of order"


def test_broker_down_then_back_delivers_all_once_in_order(spool: Spool, tmp_path: Path) -> None:
    broker = TansuBroker(tmp_path)  # not started: the outage comes first
    topic = f"spool-{uuid.uuid4().hex[:8]}"
    try:
        with BreakerProducer(broker.bootstrap, spool, FAST) as producer:
            for start in range(0, MESSAGES, 500):
                producer.send_many([(topic, *m[1:]) for m in _messages(start, start + 500)])
            wait_until(lambda: spool.count() == MESSAGES, timeout=30, what="all spooled")
            assert producer.state is not CircuitState.CLOSED
            broker.start()
            _create_topic(broker, topic)
            assert producer.flush(timeout=60), f"still {producer.state}"
            assert producer.take_failed() == []
        records = broker.consume_all(topic, quiet=1.0, timeout=60)
    finally:
        broker.stop()
    _check(records, MESSAGES)


def test_a_spool_gives_messages_back_by_sequence_number(spool: Spool) -> None:
    entries = [Spooled(seq, "t", b"k", b"%d" % seq, [("h", b"v")]) for seq in (5, 1, 3)]
    spool.append(entries[:1])
    spool.append(entries[1:])
    assert [e.seq for e in spool.head(10)] == [1, 3, 5]
    assert spool.head(1)[0] == entries[1]
    spool.remove([entries[1]])
    assert (spool.count(), spool.last_seq()) == (2, 5)
    spool.remove(spool.head(10))
    assert (spool.count(), spool.last_seq(), spool.head(10)) == (0, None, [])


@pytest.mark.slow  # Tansu waits about 5 s for connected clients before it stops
def test_an_outage_under_a_connected_producer_loses_and_repeats_nothing(
    tmp_path: Path,
) -> None:
    # The broker keeps its topics and producer ids across the restart (S3 storage), as a
    # real one would; stopped between requests, not killed mid-request (see TansuBroker.stop).
    spool = open_spool(redis_url(), f"test-{uuid.uuid4().hex[:8]}")
    topic = f"spool-{uuid.uuid4().hex[:8]}"
    messages = _messages(0, MESSAGES)
    with MotoS3(tmp_path / "moto.log") as storage:
        broker = TansuBroker(tmp_path, storage=storage)
        try:
            broker.start()
            broker.create_topic(topic, partitions=3)
            with BreakerProducer(broker.bootstrap, spool, FAST) as producer:
                producer.send_many([(topic, *m[1:]) for m in messages[:100]])
                assert producer.flush(timeout=30)
                broker.stop()
                for start in range(100, MESSAGES, 500):
                    producer.send_many([(topic, *m[1:]) for m in messages[start : start + 500]])
                wait_until(lambda: producer.state is not CircuitState.CLOSED, what="open")
                broker.start()
                assert producer.flush(timeout=60), f"still {producer.state}"
                assert producer.take_failed() == []
            records = broker.consume_all(topic, quiet=1.0, timeout=60)
        finally:
            broker.stop()
    _check(records, MESSAGES)


def test_a_spooled_message_the_broker_refuses_does_not_stop_the_drain(tmp_path: Path) -> None:
    from tailrace.streams.producer import BreakerProducer
    from tailrace.streams.spool import Spooled
    from tailrace.streams.spool.disk import DiskSpool

    spool = DiskSpool(str(tmp_path / "spool"), "refused")
    # left by an earlier run: one message too large for the producer, then a good one
    huge = b"x" * (2 << 20)  # over librdkafka's 1 MB message.max.bytes
    spool.append([Spooled(1, "refusals", b"k", huge, []), Spooled(2, "refusals", b"k", b"ok", [])])
    with TansuBroker(tmp_path) as broker:
        broker.create_topic("refusals")
        producer = BreakerProducer(broker.bootstrap, spool)
        try:
            assert producer.flush(30), "the drain stopped at the refused message"
            (failed,) = producer.take_failed()
            assert failed.value == huge and "size" in failed.error.lower()
        finally:
            producer.close()
        assert [r.value for r in broker.consume_all("refusals", quiet=0.5)] == [b"ok"]
    assert spool.count() == 0
