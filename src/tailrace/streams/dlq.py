"""Dead letters: a message that failed its last attempt goes to ``<topic>_dlq`` with its
original key, value and headers, plus ``dlq_*`` headers saying why and where from; `replay`
puts dead messages back onto the source topic."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from confluent_kafka import Consumer as KafkaConsumer
from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka import Message as KafkaMessage

from .consumer.config import ConsumerConfig
from .consumer.message import Headers, Message, header_pairs
from .dedup import Dedup
from .router import TopicRouter

log = logging.getLogger("tailrace.streams.dlq")

PREFIX = "dlq_"
ERROR = "dlq_error"
ATTEMPTS = "dlq_attempts"
ORIGINAL_TOPIC = "dlq_original_topic"
ORIGINAL_PARTITION = "dlq_original_partition"
ORIGINAL_OFFSET = "dlq_original_offset"
GROUP = "dlq_group"
MESSAGE_ID = "dlq_message_id"
FAILED_AT = "dlq_failed_at"
REPLAYED_FROM = "replayed_from"  # on a replayed message: dlq topic:partition:offset

_ERROR_LIMIT = 4000  # bytes of error text kept: a header is not a log


def describe(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= _ERROR_LIMIT else text[: _ERROR_LIMIT - 1] + "…"


def dead_letter_headers(message: Message, error: str, attempts: int, group: str) -> Headers:
    """The original headers, then the ``dlq_*`` ones."""
    added = [
        (ERROR, error),
        (ATTEMPTS, str(attempts)),
        (ORIGINAL_TOPIC, message.topic),
        (ORIGINAL_PARTITION, str(message.partition)),
        (ORIGINAL_OFFSET, str(message.offset)),
        (GROUP, group),
        (FAILED_AT, datetime.now(UTC).isoformat(timespec="milliseconds")),
    ]
    if message.id is not None:
        added.append((MESSAGE_ID, message.id))
    return [*message.headers, *((name, value.encode()) for name, value in added)]


def dead_letter(
    router: TopicRouter, topic: str, message: Message, error: str, attempts: int, group: str
) -> None:
    headers = dead_letter_headers(message, error, attempts, group)
    router.produce(topic, message.value, message.key, headers)


def replay(config: ConsumerConfig, dedup: Dedup, *, timeout_s: float = 30.0) -> int:
    """Put the messages dead at the start back onto `config.topic`; how many.

    Reads the dead-letter topic under the group ``<group>.dlq-replay`` and commits what it
    replayed, so a second replay does not send them again. Each message's id is first
    forgotten by the dedup store (it was marked when dead-lettered), or the consumer would
    skip it. A crash between producing and committing replays some twice: the dedup store
    then takes the second copy as a duplicate, unless the first one was already handled.
    """
    source = config.dead_letter_topic
    consumer = KafkaConsumer(
        {
            **config.consumer_settings(),
            "group.id": f"{config.group}.dlq-replay",
            "logger": log,
        }
    )
    router = TopicRouter(config.producer_settings())
    replayed = 0
    try:
        ends = _ends(consumer, source)
        consumer.assign([TopicPartition(source, p) for p in ends])
        deadline = time.monotonic() + timeout_s
        positions = {p: _committed(consumer, source, p) for p in ends}
        while any(positions[p] < end for p, end in ends.items()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"replaying {source}: not at its end after {timeout_s} s")
            batch = [m for m in consumer.consume(config.batch_size, 0.5) if m.error() is None]
            batch = [m for m in batch if (m.offset() or 0) < ends[m.partition() or 0]]
            if not batch:
                continue
            _replay_batch(batch, config.topic, dedup, router)
            for message in batch:
                positions[message.partition() or 0] = (message.offset() or 0) + 1
            consumer.commit(
                offsets=[TopicPartition(source, p, o) for p, o in positions.items()],
                asynchronous=False,
            )
            replayed += len(batch)
    finally:
        consumer.close()
        router.close()
    log.info("replayed dead letters", extra={"topic": source, "count": replayed})
    return replayed


def _replay_batch(
    batch: list[KafkaMessage], target: str, dedup: Dedup, router: TopicRouter
) -> None:
    ids: list[str] = []
    for message in batch:
        for name, value in header_pairs(message):
            if name == MESSAGE_ID:
                ids.append(value.decode("utf-8", "backslashreplace"))
    dedup.forget(ids)
    for message in batch:
        headers = [(n, v) for n, v in header_pairs(message) if not n.startswith(PREFIX)]
        origin = f"{message.topic()}:{message.partition()}:{message.offset()}"
        headers.append((REPLAYED_FROM, origin.encode()))
        router.produce(target, message.value(), message.key(), headers)
    router.flush()


def _ends(consumer: KafkaConsumer, topic: str) -> dict[int, int]:
    """Each partition's high watermark now: the replay stops there."""
    metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
    if metadata is None or metadata.error is not None:
        return {}
    ends: dict[int, int] = {}
    for partition in metadata.partitions:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        ends[partition] = high
    return ends


def _committed(consumer: KafkaConsumer, topic: str, partition: int) -> int:
    try:
        found = consumer.committed([TopicPartition(topic, partition)], timeout=10)
    except KafkaException:
        return 0
    offset = found[0].offset if found else -1
    return offset if offset >= 0 else 0
