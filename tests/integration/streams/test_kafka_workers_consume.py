"""Coming from the Kafka workers: their consumer settings and message ids on a real broker
(Tansu) and dedup store (Redis)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import orjson
import pytest
from click.testing import CliRunner

from tailrace.cli.consume import consume
from tailrace.streams import Consumer, IdSource, Message, RedisDedup
from tests.integration.streams.test_consumer import config, produce, redis_url  # noqa: F401
from tests.kafka_broker import TansuBroker
from tests.waiting import wait_until

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    with TansuBroker(tmp_path_factory.mktemp("tansu")) as started:
        yield started


@pytest.fixture
def topic(broker: TansuBroker) -> str:
    name = f"message_processing-{uuid.uuid4().hex[:8]}"
    broker.create_topic(name, partitions=2)
    return name


@pytest.mark.parametrize("reset", [None, "latest"])
def test_kafka_auto_offset_reset_decides_where_a_new_group_starts(
    broker: TansuBroker, topic: str, reset: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unset, a new group reads from the beginning (the reference's `earliest`); `latest`
    skips what was there before it started."""
    if reset is None:
        monkeypatch.delenv("KAFKA_AUTO_OFFSET_RESET", raising=False)
    else:
        monkeypatch.setenv("KAFKA_AUTO_OFFSET_RESET", reset)
    produce(broker, topic, [("k", b"old-1"), ("k", b"old-2")], partition=0)
    seen: list[bytes] = []
    consumer = Consumer(config(broker, topic), lambda m: seen.append(m.value or b""))
    thread = threading.Thread(target=consumer.run)
    thread.start()
    sent = 0

    def a_new_one_arrived() -> bool:
        # `latest` resolves when the consumer first fetches, unknown from here: new messages
        # go on until one arrives (those sent before the start are skipped like the old).
        nonlocal sent
        if not any(value.startswith(b"new") for value in seen):
            sent += 1
            produce(broker, topic, [("k", b"new-%d" % sent)], partition=0)
            return False
        return True

    try:
        wait_until(a_new_one_arrived, 30, "a new message")
    finally:
        consumer.stop()
        thread.join(10)
    new = [value for value in seen if value.startswith(b"new")]
    first = int(new[0].removeprefix(b"new-"))
    assert new == [b"new-%d" % n for n in range(first, first + len(new))]  # none skipped since
    if reset is None:
        assert seen[:2] == [b"old-1", b"old-2"] and first == 1
    assert seen == ([b"old-1", b"old-2"] if reset is None else []) + new


def test_an_unknown_consumer_property_is_refused_by_name(broker: TansuBroker, topic: str) -> None:
    result = CliRunner().invoke(
        consume,
        [
            *(topic, "--group", "g", "--bootstrap-servers", broker.bootstrap),
            *("--dedup-store", "none", "--handler", "json:loads"),
            *("--consumer-config", "no.such.property=1"),
        ],
    )
    assert result.exit_code != 0
    assert "no.such.property" in str(result.exception)


def test_dedup_by_the_message_id_inside_the_json_body(
    broker: TansuBroker,
    topic: str,
    redis_url: str,  # noqa: F811
) -> None:
    """The router's messages carry their id in the body, not in a header: a resent message
    (another offset, the same body id) is handled once."""
    ids = [str(uuid.uuid4()) for _ in range(5)]
    bodies = [orjson.dumps({"message_id": i, "conversation_id": 7}) for i in ids]
    resent = [bodies[1], bodies[3], bodies[1]]  # the producer's retries, later in the log
    produce(broker, topic, [("conversation:7", b) for b in bodies + resent], partition=0)
    handled: list[str] = []

    def handler(message: Message) -> None:
        handled.append(orjson.loads(message.value or b"{}")["message_id"])

    cfg = config(broker, topic, id_source=IdSource.BODY, id_field="message_id")
    dedup = RedisDedup(redis_url, cfg.group, 3600)
    with Consumer(cfg, handler, dedup=dedup) as consumer:
        thread = threading.Thread(target=consumer.run)
        thread.start()
        try:
            wait_until(lambda: consumer.stats.handled + consumer.stats.deduplicated >= 8, 20)
        finally:
            consumer.stop()
            thread.join(10)
    assert handled == ids
    assert consumer.stats.deduplicated == 3
