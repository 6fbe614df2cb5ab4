"""Stream consumers against a real broker (Tansu), PostgreSQL and Redis.

Consumers here are assigned their partitions directly (`ConsumerConfig.partitions`): a
group join on Tansu takes seconds. One test goes through the group protocol.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from click.testing import CliRunner
from confluent_kafka import Producer

from tailrace.cli.consume import consume
from tailrace.engine.retry import RetryPolicy
from tailrace.streams import (
    Consumer,
    ConsumerConfig,
    Dedup,
    IdSource,
    Message,
    Output,
    PostgresDedup,
    RedisDedup,
    dlq,
    replay,
)
from tailrace.streams.consumer import metrics
from tests.kafka_broker import TansuBroker
from tests.services import missing, postgres_schema
from tests.waiting import wait_until

pytestmark = pytest.mark.kafka

REDIS_URL = "redis://127.0.0.1:6379/0"
FAST_RETRY = RetryPolicy(base_s=0.02, factor=2.0, max_s=0.1, jitter=0.0)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    with TansuBroker(tmp_path_factory.mktemp("tansu")) as started:
        yield started


@pytest.fixture
def topic(broker: TansuBroker) -> str:
    name = f"streams-{uuid.uuid4().hex[:10]}"
    broker.create_topic(name, partitions=2)
    return name


@pytest.fixture
def pg_url() -> Iterator[str]:
    with postgres_schema() as url:
        yield url


@pytest.fixture
def redis_url() -> str:
    try:
        import redis
    except ImportError as exc:
        missing("Redis", f"redis-py is not installed ({exc})")
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        missing("Redis", f"no answer at {REDIS_URL}: {exc}")
    finally:
        client.close()
    return REDIS_URL


def produce(
    broker: TansuBroker,
    topic: str,
    messages: list[tuple[str, bytes]],
    headers: list[tuple[str, bytes]] | None = None,
    partition: int | None = None,
    ids: bool = False,
) -> None:
    """(key, value) pairs onto `topic`, in order; all on `partition` when given; each with a
    ``message_id`` header of its own with `ids` (keys name entities, not messages)."""
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    for key, value in messages:
        sent: list[tuple[str, str | bytes | None]] | None = list(headers) if headers else None
        if ids:
            sent = [*(headers or []), ("message_id", uuid.uuid4().hex.encode())]
        if partition is None:
            producer.produce(topic, value, key, headers=sent)
        else:
            producer.produce(topic, value, key, partition=partition, headers=sent)
    assert producer.flush(10) == 0
    producer.close()


def config(broker: TansuBroker, topic: str, **overrides: object) -> ConsumerConfig:
    settings: dict[str, object] = {
        "topic": topic,
        "group": f"g-{uuid.uuid4().hex[:8]}",
        "bootstrap_servers": broker.bootstrap,
        "retry": FAST_RETRY,
        "partitions": [0, 1],
        "poll_timeout_s": 0.1,
        **overrides,
    }
    return ConsumerConfig(**settings)  # type: ignore[arg-type]


def run_until(consumer: Consumer, done: Callable[[], bool], timeout: float = 20.0) -> None:
    """Run `consumer` on a thread until `done()`; fail after `timeout` s."""
    thread = threading.Thread(target=consumer.run)
    thread.start()
    try:
        wait_until(done, timeout, "the consumer")
    finally:
        consumer.stop()
        thread.join(10)
    assert not thread.is_alive()


def test_failing_message_is_dead_lettered_after_3_attempts_and_replayed(
    broker: TansuBroker, topic: str, pg_url: str
) -> None:
    produce(
        broker,
        topic,
        [("a", b"poison"), ("b", b"b1"), ("a", b"a2"), ("b", b"b2")],
        headers=[("trace", b"t-1")],
        partition=0,
        ids=True,
    )
    calls: list[tuple[bytes | None, int]] = []

    def handler(message: Message) -> None:
        calls.append((message.value, message.attempt))
        if message.value == b"poison":
            raise ValueError("cannot route this one")

    cfg = config(broker, topic)
    with Consumer(cfg, handler, dedup=PostgresDedup(pg_url, cfg.group, 3600)) as consumer:
        run_until(consumer, lambda: consumer.stats.handled == 3)
        assert consumer.stats.dead_lettered == 1 and consumer.stats.failed == 3

    # Key b went on while key a waited; a2 came only after the poison was dead-lettered.
    order = [value for value, _ in calls]
    assert order.index(b"b2") < order.index(b"a2")
    assert [attempt for value, attempt in calls if value == b"poison"] == [1, 2, 3]
    assert order[-1] == b"a2"

    (dead,) = broker.consume_all(cfg.dead_letter_topic, expected=1)
    assert dead.value == b"poison" and dead.key == b"a"
    assert dead.header("trace") == b"t-1"  # the original headers travel along
    error = dead.header(dlq.ERROR) or b""
    assert b"ValueError: cannot route this one" in error
    assert dead.header(dlq.ATTEMPTS) == b"3"
    assert dead.header(dlq.ORIGINAL_TOPIC) == topic.encode()
    assert dead.header(dlq.ORIGINAL_PARTITION) == b"0"
    assert dead.header(dlq.ORIGINAL_OFFSET) == b"0"

    # Replay puts it back (once, however often replay runs) and it is handled this time.
    arguments = [topic, "--group", cfg.group, "--bootstrap-servers", broker.bootstrap]
    result = CliRunner().invoke(consume, [*arguments, "--dedup-url", pg_url, "--replay"])
    assert result.exit_code == 0, result.output
    assert f"replayed 1 messages from {topic}_dlq onto {topic}" in result.output
    with PostgresDedup(pg_url, cfg.group, 3600) as dedup_store:
        assert replay(cfg, dedup_store) == 0
    back = [r for r in broker.consume_all(topic, expected=5) if r.value == b"poison"]
    assert len(back) == 2 and back[1].header(dlq.ERROR) is None
    assert back[1].header("trace") == b"t-1"

    healed: list[bytes | None] = []
    with Consumer(
        cfg, lambda m: healed.append(m.value), dedup=PostgresDedup(pg_url, cfg.group, 3600)
    ) as consumer:
        run_until(consumer, lambda: consumer.stats.handled == 1)
    assert healed == [b"poison"]


def test_key_order_is_kept_through_retries_while_other_keys_proceed(
    broker: TansuBroker, topic: str
) -> None:
    messages = [(f"k{i % 4}", f"{i}".encode()) for i in range(40)]
    produce(broker, topic, messages, partition=1)
    failures = {b"0": 2, b"5": 1}  # value: attempts that fail first
    handled: list[tuple[str, int]] = []

    def handler(message: Message) -> None:
        if failures.get(message.value or b"", 0) >= message.attempt:
            raise RuntimeError("not yet")
        handled.append(((message.key or b"").decode(), int(message.value or b"")))

    cfg = config(broker, topic, max_waiting=3, id_source=IdSource.OFFSET)
    with Consumer(cfg, handler) as consumer:
        run_until(consumer, lambda: len(handled) == 40)
    for key in ("k0", "k1", "k2", "k3"):
        values = [v for k, v in handled if k == key]
        assert values == sorted(values), key
    # Keys 2 and 3 never waited: they were all handled before k0's first message.
    first_k0 = handled.index(("k0", 0))
    assert {v for _, v in handled[:first_k0]} >= {int(v) for k, v in messages if k in ("k2", "k3")}


def _redis(url: str, group: str) -> Dedup:
    return RedisDedup(url, group, 60)


@pytest.mark.parametrize("store", ["postgres", "redis"])
def test_a_message_sent_twice_is_handled_once(
    broker: TansuBroker, topic: str, store: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("pg_url" if store == "postgres" else "redis_url")
    ids = [f"m-{i}" for i in range(50)]
    batch = [(f"k{i}", f"v{i}".encode()) for i in range(50)]
    # Each message carries its id in a header: a producer's resend repeats it.
    for message_id, message in zip(ids, batch, strict=True):
        produce(broker, topic, [message], headers=[("message_id", message_id.encode())])
    cfg = config(broker, topic)

    def open_store() -> Dedup:
        if store == "postgres":
            return PostgresDedup(url, cfg.group, 3600)
        return _redis(url, cfg.group)

    seen: list[str | None] = []
    with Consumer(cfg, lambda m: seen.append(m.id), dedup=open_store()) as consumer:
        run_until(consumer, lambda: consumer.stats.handled == 50)
    # Resent (the first 30 again) and redelivered to a consumer starting from scratch.
    for message_id, message in zip(ids[:30], batch[:30], strict=True):
        produce(broker, topic, [message], headers=[("messageId", message_id.encode())])
    again = config(broker, topic, group=cfg.group, kafka={"group.id": f"{cfg.group}-fresh"})
    with Consumer(again, lambda m: seen.append(m.id), dedup=open_store()) as consumer:
        run_until(consumer, lambda: consumer.stats.deduplicated == 80)
        assert consumer.stats.handled == 0
    assert sorted(seen, key=str) == sorted(ids)
    if store == "redis":
        _clear_redis(url, cfg.group)


def test_messages_of_one_key_without_ids_are_all_handled(
    broker: TansuBroker, topic: str, pg_url: str
) -> None:
    """By default a key is not an id: an entity's updates are distinct messages."""
    updates = [("chat-1", f"status {n}".encode()) for n in range(5)]
    produce(broker, topic, updates, partition=0)
    cfg = config(broker, topic)
    seen: list[bytes | None] = []
    dedup = PostgresDedup(pg_url, cfg.group, 3600)
    with Consumer(cfg, lambda m: seen.append(m.value), dedup=dedup) as consumer:
        run_until(consumer, lambda: consumer.stats.handled == 5)
        assert consumer.stats.deduplicated == 0
    assert seen == [value for _, value in updates]


def _clear_redis(url: str, group: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(f"tailrace:dedup:{group}:*"))
        keys += list(client.scan_iter(f"tailrace:dedup-done:{group}:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def test_outputs_are_routed_and_batches_go_through_the_group(broker: TansuBroker) -> None:
    suffix = uuid.uuid4().hex[:8]
    source, status = f"message_processing_{suffix}", f"message_status_updates_{suffix}"
    broker.create_topic(source, partitions=2)
    broker.create_topic(status)
    produce(broker, source, [(f"m{i}", b'{"id": %d}' % i) for i in range(20)])
    batches: list[int] = []

    def handler(messages: list[Message]) -> list[Output]:
        batches.append(len(messages))
        return [Output(b"DELIVERED:" + (m.value or b""), key=m.key) for m in messages]

    # Tansu holds a new group's first join for half the session timeout (45 s by default).
    short_session = {"session.timeout.ms": "2000", "heartbeat.interval.ms": "500"}
    cfg = config(broker, source, partitions=None, routes=[status], kafka=short_session)
    before = metrics.REGISTRY.get_sample_value(
        "tailrace_stream_messages_handled_total", {"topic": source, "group": cfg.group}
    )
    with Consumer(cfg, batch_handler=handler) as consumer:
        run_until(consumer, lambda: consumer.stats.handled == 20, timeout=30)
    routed = broker.consume_all(status, expected=20)
    assert sorted(r.value or b"" for r in routed) == sorted(
        b'DELIVERED:{"id": %d}' % i for i in range(20)
    )
    assert sum(batches) == 20
    after = metrics.REGISTRY.get_sample_value(
        "tailrace_stream_messages_handled_total", {"topic": source, "group": cfg.group}
    )
    assert (before or 0) + 20 == after


def test_claim_in_the_handlers_transaction(pg_url: str) -> None:
    from tailrace.streams import claim

    PostgresDedup(pg_url, "g", 60).close()  # creates the table
    with psycopg.connect(pg_url) as conn:
        assert claim(conn, "g", "m-1") is True
        assert claim(conn, "g", "m-1") is False
        conn.rollback()  # a handler whose transaction failed leaves the id unclaimed
        assert claim(conn, "g", "m-1") is True
        conn.commit()
    with PostgresDedup(pg_url, "g", 60) as store:
        assert store.take("t", [("m-1", 0, 5), ("m-2", 0, 6)]) == {"m-1"}
        store.forget(["m-1"])
        assert store.take("t", [("m-1", 0, 7)]) == set()


@pytest.mark.parametrize("store", ["postgres", "redis"])
def test_a_redelivery_runs_again_until_its_offset_is_done(
    store: str, request: pytest.FixtureRequest
) -> None:
    """An id taken again at the position that took it is that message redelivered (after a
    crash): new while its offset is not recorded done, a duplicate once it is; at another
    position it is a resend, always a duplicate."""
    url = request.getfixturevalue("pg_url" if store == "postgres" else "redis_url")
    group = f"g-{uuid.uuid4().hex[:8]}"
    dedup: Dedup = PostgresDedup(url, group, 60) if store == "postgres" else _redis(url, group)
    with contextlib.closing(dedup):
        assert dedup.take("t", [("a", 0, 10), ("b", 1, 3)]) == set()
        assert dedup.take("t", [("a", 0, 10), ("b", 1, 4)]) == {"b"}
        dedup.done("t", {0: 10, 1: 4})
        assert dedup.take("t", [("a", 0, 10)]) == set()  # offset 10 itself is not done
        dedup.done("t", {0: 11})
        dedup.done("t", {0: 9})  # a late write never moves it back
        assert dedup.take("t", [("a", 0, 10), ("b", 1, 3)]) == {"a", "b"}
        assert dedup.take("other", [("a", 0, 10)]) == set()  # done offsets are per topic
    if store == "redis":
        _clear_redis(url, group)


def test_a_handlers_claim_holds_through_the_consumers_take(pg_url: str) -> None:
    from tailrace.streams import claim

    with PostgresDedup(pg_url, "g", 60) as store:
        assert store.take("t", [("m-1", 0, 0)]) == set()  # taken before the handler runs
        with psycopg.connect(pg_url) as conn:
            assert claim(conn, "g", "m-1") is True  # the effect is not committed yet
            conn.commit()
            # redelivered after a crash: the handler runs again, its effect does not
            assert store.take("t", [("m-1", 0, 0)]) == set()
            assert claim(conn, "g", "m-1") is False


def test_failures_and_resends_among_thousands_of_fast_calls(
    broker: TansuBroker, topic: str, pg_url: str
) -> None:
    """Past its first checkpoint a fast handler runs in the consumer's batch loop: failures,
    retries, dead letters, resent ids and key order hold there as they do call by call."""
    count, resent, poison = 3000, range(1000, 1100), 2200
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    for i in [*range(count), *resent]:  # a producer resending 100 of them at the end
        producer.produce(topic, b"%d" % i, b"k%d" % (i % 10), headers=[("message_id", b"m%d" % i)])
    assert producer.flush(10) == 0
    producer.close()
    fail_once = {700, 1500}
    handled: list[tuple[bytes, int]] = []

    def handler(message: Message) -> None:
        seq = int(message.value or b"")
        if seq == poison or (seq in fail_once and message.attempt == 1):
            raise RuntimeError(f"not {seq}")
        handled.append((message.key or b"", seq))

    cfg = config(broker, topic, attempts=2)
    labels = {"topic": topic, "group": cfg.group}
    with Consumer(cfg, handler, dedup=PostgresDedup(pg_url, cfg.group, 3600)) as consumer:
        run_until(consumer, lambda: consumer.stats.dead_lettered == 1 and len(handled) == 2999)
        assert consumer.stats.deduplicated == len(resent)
        assert consumer.stats.failed == 4 and consumer.stats.handled == 2999
    assert sorted(seq for _, seq in handled) == [i for i in range(count) if i != poison]
    for key in {k for k, _ in handled}:
        values = [seq for k, seq in handled if k == key]
        assert values == sorted(values), key
    (dead,) = broker.consume_all(cfg.dead_letter_topic, expected=1)
    assert dead.value == b"%d" % poison
    calls = metrics.REGISTRY.get_sample_value("tailrace_stream_handler_seconds_count", labels)
    assert calls == 2999 + 4  # every call counted, the failed ones too
