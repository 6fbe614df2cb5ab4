"""How far a consumer group is behind, per partition: the topic's end offset minus the
group's committed offset, read from the broker (so any process can tell, not only the
consumers themselves; the admin service shows it)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, TopicPartition

from ..errors import TailraceError
from ..kafka_client import config_from_env

TIMEOUT_S = 5.0


class LagError(TailraceError):
    """The broker could not tell a group's lag."""


@dataclass(frozen=True, slots=True)
class PartitionLag:
    partition: int
    committed: int | None  # None: the group never committed on this partition
    end: int
    lag: int  # what the group has still to read: from its commit, or from the start


def group_lag(bootstrap_servers: str, group: str, topic: str) -> list[PartitionLag]:
    """Each partition of `topic` with `group`'s committed offset and what is left to read."""
    try:
        consumer = Consumer(
            {
                **config_from_env(),
                "bootstrap.servers": bootstrap_servers,
                "group.id": group,  # only read with: this consumer never joins or commits
                "enable.auto.commit": False,
                "client.id": f"tailrace-lag-{uuid.uuid4().hex[:6]}",
            }
        )
    except KafkaException as exc:
        raise LagError(f"cannot read lag from {bootstrap_servers}: {exc.args[0]}") from None
    try:
        metadata = consumer.list_topics(topic, timeout=TIMEOUT_S).topics.get(topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            raise LagError(f"topic {topic!r} is unknown to the broker")
        partitions = [TopicPartition(topic, p) for p in sorted(metadata.partitions)]
        committed = consumer.committed(partitions, timeout=TIMEOUT_S)
        found = []
        for tp in committed:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, tp.partition), timeout=TIMEOUT_S
            )
            at = tp.offset if tp.offset >= 0 else None
            found.append(PartitionLag(tp.partition, at, high, high - (low if at is None else at)))
        return found
    except KafkaException as exc:
        raise LagError(f"lag of group {group!r} on {topic!r}: {exc.args[0]}") from None
    finally:
        consumer.close()
