"""Settling a batch whose relay died between claim and mark: which of its events did the
broker take? The topic says: every outbox message carries its event id in a header, and the
batch row kept each partition's next offset as known when it was claimed, so whatever the
batch produced lies at or after that offset. Found events are published; the rest go back
to pending, keeping their place (the batch held their keys, so nothing later was sent)."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Collection, Mapping
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from ...kafka_client import config_from_env
from . import ID_HEADER

log = logging.getLogger("tailrace.outbox.reconcile")

READ_TIMEOUT_S = 60.0


def events_on_topics(
    bootstrap_servers: str,
    wanted: Mapping[str, Collection[int]],
    offsets: Mapping[str, int],
    overrides: Mapping[str, str] | None = None,
) -> set[int]:
    """The ids of `wanted` (topic -> event ids) found on their topics, each partition read
    from ``offsets["topic:partition"]`` (or its beginning) to its end."""
    consumer = Consumer(
        {
            **config_from_env(),
            **(overrides or {}),
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"tailrace-outbox-reconcile-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "logger": log,
        }
    )
    try:
        found: set[int] = set()
        for topic, ids in wanted.items():
            found |= _scan(consumer, topic, set(ids), offsets)
        return found
    finally:
        consumer.close()


def _scan(consumer: Consumer, topic: str, ids: set[int], offsets: Mapping[str, int]) -> set[int]:
    metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
    if metadata is None or metadata.error is not None or not metadata.partitions:
        return set()
    assignment = [
        TopicPartition(topic, p, offsets.get(f"{topic}:{p}", OFFSET_BEGINNING))
        for p in sorted(metadata.partitions)
    ]
    consumer.assign(assignment)
    found: set[int] = set()
    at_end: set[int] = set()
    deadline = time.monotonic() + READ_TIMEOUT_S
    while len(at_end) < len(assignment) and len(found) < len(ids):
        if time.monotonic() > deadline:
            raise TimeoutError(f"reading {topic} back took over {READ_TIMEOUT_S:.0f} s")
        for message in consumer.consume(10_000, 0.2):
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    at_end.add(message.partition() or 0)
                    continue
                raise RuntimeError(f"reading {topic}: {error.str()}")
            at_end.discard(message.partition() or 0)
            event_id = _event_id(message.headers())
            if event_id in ids:
                found.add(event_id)
    consumer.unassign()
    return found


def _event_id(headers: Any) -> int | None:
    for name, value in headers or ():
        if name == ID_HEADER and value:
            try:
                return int(value)
            except ValueError:
                return None
    return None
