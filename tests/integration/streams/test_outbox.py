"""The transactional outbox and its relay against PostgreSQL and a Tansu broker."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from tailrace.engine.retry import RetryPolicy
from tailrace.streams import outbox
from tailrace.streams.outbox import OutboxEvent, OutboxStatus
from tailrace.streams.outbox.relay import Relay, RelaySettings
from tests.integration.streams.outbox_support import (
    migrated_schema,
    outbox_ids,
    per_key,
    redis_url,
)
from tests.kafka_broker import TansuBroker
from tests.waiting import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

FAST = RelaySettings(batch_size=500, reconcile_every_s=0.2, orphan_grace_s=0.2, idle_wait_s=0.2)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    with TansuBroker(tmp_path_factory.mktemp("tansu-outbox")) as started:
        yield started


@pytest.fixture
def topic(broker: TansuBroker) -> str:
    name = f"outbox-{uuid.uuid4().hex[:10]}"
    broker.create_topic(name, partitions=3)
    return name


@pytest.fixture
def db() -> Iterator[str]:
    with migrated_schema() as url:
        yield url


def test_rolled_back_publishes_nothing_committed_publishes_once(
    db: str, broker: TansuBroker, topic: str
) -> None:
    with psycopg.connect(db) as conn:
        with conn.transaction():
            kept = outbox.add(conn, topic, "k", {"n": 1}, {"source": "test"})
        with pytest.raises(ZeroDivisionError), conn.transaction():
            outbox.add(conn, topic, "k", b"rolled back")
            raise ZeroDivisionError
    with Relay(db, broker.bootstrap, FAST) as relay:
        stats = relay.run(until_idle=True)
    assert stats.published == 1
    records = broker.consume_all(topic, quiet=0.5)
    assert outbox_ids(records) == [kept]
    assert records[0].value == b'{"n":1}'
    assert records[0].key == b"k"
    assert records[0].header("source") == b"test"
    assert records[0].header("message_id") == f"outbox-{kept}".encode()
    with psycopg.connect(db) as conn:
        assert outbox.counts(conn)[OutboxStatus.PUBLISHED] == 1


def test_two_relays_keep_order_per_key_and_publish_each_event_once(
    db: str, broker: TansuBroker, topic: str
) -> None:
    keys = [f"key-{i}" for i in range(2_000)]  # more than a batch: both relays get some
    with psycopg.connect(db) as conn:
        for part in range(4):
            with conn.transaction():
                outbox.add_many(
                    conn,
                    (
                        OutboxEvent(topic, keys[n % 2_000], f"{keys[n % 2_000]}:{n}")
                        for n in range(part * 2_000, (part + 1) * 2_000)
                    ),
                )
    stop = threading.Event()
    relays = [Relay(db, broker.bootstrap, FAST) for _ in range(2)]
    threads = [threading.Thread(target=r.run, args=(stop,)) for r in relays]
    for thread in threads:
        thread.start()
    try:
        records = broker.consume_all(topic, expected=8_000, timeout=60)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        for relay in relays:
            relay.close()
    ids = outbox_ids(records)
    assert len(ids) == len(set(ids)) == 8_000
    for key, values in per_key(records).items():
        numbers = [int((v or b"").split(b":")[1]) for v in values]
        assert numbers == sorted(numbers), f"{key!r} out of order"
    assert all(r.batches > 0 for r in (relay.stats for relay in relays)), "one relay did all"


def test_poison_event_is_moved_aside_and_holds_its_key_until_requeued(
    db: str, broker: TansuBroker, topic: str
) -> None:
    settings = RelaySettings(
        max_attempts=2,
        retry=RetryPolicy(base_s=0.01, jitter=0),
        idle_wait_s=0.05,
        producer={"message.max.bytes": "2000"},
    )
    with Relay(db, broker.bootstrap, settings) as relay:
        with psycopg.connect(db, autocommit=True) as conn:
            poison = outbox.add(conn, topic, "k", b"x" * 5_000)
            assert relay.run_once() == 1  # its first attempt fails
            after = outbox.add(conn, topic, "k", b"after")
            other = outbox.add(conn, topic, "j", b"other key")
        relay.run(until_idle=True)
    with psycopg.connect(db, autocommit=True) as conn:
        status, attempts, error = conn.execute(
            "SELECT status, attempts, last_error FROM tailrace_outbox WHERE id = %s", (poison,)
        ).fetchone() or (None, None, None)
        assert (status, attempts) == ("dead", 2)
        assert "too large" in (error or "").lower()
        # The later event of the dead one's key waits; the other key went on.
        assert outbox_ids(broker.consume_all(topic, expected=1)) == [other]
        assert outbox.held(conn).held_events == 1
        assert outbox.counts(conn)[OutboxStatus.PENDING] == 1

        assert outbox.requeue(conn, keys=["k"]) == [poison]
    # A relay that takes it now publishes the key in its order.
    with Relay(db, broker.bootstrap, FAST) as relay:
        relay.run(until_idle=True)
    records = broker.consume_all(topic, expected=3)
    assert per_key(records)[b"k"] == [b"x" * 5_000, b"after"]
    assert sorted(outbox_ids(records)) == sorted([poison, after, other])


def test_a_commit_wakes_an_idle_relay(db: str, broker: TansuBroker, topic: str) -> None:
    stop = threading.Event()
    settings = RelaySettings(idle_wait_s=30.0, reconcile_every_s=60.0)
    with Relay(db, broker.bootstrap, settings) as relay:
        thread = threading.Thread(target=relay.run, args=(stop,))
        thread.start()
        try:
            wait_until(lambda: relay.stats.batches == 0 and thread.is_alive(), what="relay idle")
            with psycopg.connect(db) as conn, conn.transaction():
                outbox.add(conn, topic, None, b"wake up")
            wait_until(lambda: relay.stats.published == 1, timeout=10, what="the event sent")
        finally:
            stop.set()
            # its NOTIFY wait ends only with the next notification or the idle wait
            with psycopg.connect(db, autocommit=True) as conn:
                conn.execute("NOTIFY tailrace_outbox")
            thread.join(timeout=30)
    assert [r.value for r in broker.consume_all(topic, expected=1)] == [b"wake up"]


def test_redis_mirror_gets_each_published_event(db: str, broker: TansuBroker, topic: str) -> None:
    import orjson
    import redis

    from tailrace.streams.outbox.mirror import RedisMirror

    url = redis_url()
    client = redis.Redis.from_url(url)
    channel = f"outbox-{uuid.uuid4().hex[:8]}"
    pubsub = client.pubsub()  # type: ignore[no-untyped-call]
    try:
        pubsub.subscribe(channel)
        wait_until(lambda: pubsub.get_message(timeout=0.1), what="subscribed")
        with psycopg.connect(db, autocommit=True) as conn:
            event_id = outbox.add(conn, topic, "k", {"hello": "world"})
        mirror = RedisMirror(url, channel)
        with Relay(db, broker.bootstrap, FAST, mirror=mirror) as relay:
            relay.run(until_idle=True)
        message = wait_until(lambda: pubsub.get_message(timeout=0.1), what="mirrored event")
        assert message["type"] == "message"
        body = orjson.loads(message["data"])
        assert body == {"id": event_id, "topic": topic, "key": "k", "payload": '{"hello":"world"}'}
    finally:
        pubsub.close()
        client.close()
