"""Sending one claimed outbox batch through an idempotent producer and collecting what the
broker acknowledged, event by event (delivery callbacks), with the offsets it gave them."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

# librdkafka logs a failed connection as an error on every retry: the sink's adapter
# makes it a warning.
from ..pipeline.sinks.kafka import DEFAULT_CONFIG, LibrdkafkaLog, config_from_env, unique_client_id
from .consumer_message import MESSAGE_ID_HEADER
from .outbox import ID_HEADER

log = logging.getLogger("tailrace.outbox.publish")

# The relay flushes each batch itself, so lingering gains nothing but latency; a message the
# broker has not taken within 30 s fails back to the outbox, which retries it with backoff.
RELAY_CONFIG: Mapping[str, str] = {
    **DEFAULT_CONFIG,
    "enable.idempotence": "true",
    "linger.ms": "5",
    "message.timeout.ms": "30000",
    "client.id": "tailrace-outbox-relay",
}
_GRACE_S = 10.0


@dataclass(frozen=True, slots=True)
class Claimed:
    """An event of a claimed batch, as read back from the outbox."""

    id: int
    topic: str
    key: str | None
    payload: bytes
    headers: list[list[str]] | None
    attempts: int


@dataclass
class BatchResult:
    """What became of each event of a batch."""

    acked: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    # Those of `failed` that failed for the broker's sake (a timeout, no broker up), not
    # their own: they back off but never die of it.
    transient: set[int] = field(default_factory=set)
    unsent: list[int] = field(default_factory=list)
    # (topic, partition) -> the offset after the last acknowledged message
    next_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    # Why the producer cannot go on, if it cannot: events neither acked nor failed are
    # then in doubt, and the batch is reconciled against the topic.
    broken: str | None = None


def producer_config(
    bootstrap_servers: str, overrides: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The relay's librdkafka settings: defaults, then ``KAFKA_*`` variables, then overrides."""
    return {
        **RELAY_CONFIG,
        "client.id": unique_client_id(RELAY_CONFIG["client.id"]),
        **config_from_env(),
        **(overrides or {}),
        "bootstrap.servers": bootstrap_servers,
    }


def message_headers(event: Claimed) -> list[tuple[str, str | bytes | None]]:
    headers: list[tuple[str, str | bytes | None]] = [
        (name, value) for name, value in event.headers or ()
    ]
    if not any(name == MESSAGE_ID_HEADER for name, _ in headers):
        headers.append((MESSAGE_ID_HEADER, f"outbox-{event.id}"))
    headers.append((ID_HEADER, str(event.id)))
    return headers


class BatchPublisher:
    """Publishes batches on one idempotent producer; not thread-safe (the relay's loop
    owns it). After a fatal producer error, `publish` reports it (`BatchResult.broken`) and
    the relay makes a new publisher."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.fatal: str | None = None
        self._producer = Producer({**config, "error_cb": self._on_error, "logger": LibrdkafkaLog()})
        timeout_ms = int(config.get("message.timeout.ms", RELAY_CONFIG["message.timeout.ms"]))
        self._patience = timeout_ms / 1000 + _GRACE_S

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal():
            self.fatal = error.str()
        elif error.code() == KafkaError._ALL_BROKERS_DOWN:
            log.warning("kafka: %s; retrying", error.str())
        else:
            log.debug("kafka: %s", error.str())

    def publish(self, batch: Sequence[Claimed]) -> BatchResult:
        """Send `batch` and wait until the broker acknowledged or refused every event.

        A key's events after one the client refused outright are not sent (`unsent`): they
        keep their place behind it.
        """
        result = BatchResult()
        refused_keys: set[str] = set()
        produce = self._producer.produce
        for event in batch:
            if event.key is not None and event.key in refused_keys:
                result.unsent.append(event.id)
                continue
            callback = partial(_delivered, result, event.id)
            key = None if event.key is None else event.key.encode()
            headers = message_headers(event)
            while True:
                try:
                    produce(event.topic, event.payload, key, headers=headers, on_delivery=callback)
                    break
                except BufferError:
                    self._producer.poll(0.05)  # the queue is full: serve reports, make room
                except KafkaException as exc:
                    result.failed[event.id] = _describe(exc)
                    if event.key is not None:
                        refused_keys.add(event.key)
                    break
        result.broken = self._wait()
        return result

    def _wait(self) -> str | None:
        started = time.monotonic()
        while (left := self._producer.flush(0.5)) > 0:
            if self.fatal is not None:
                return f"fatal producer error: {self.fatal}"
            if time.monotonic() - started > self._patience:
                return f"{left} events unacknowledged after {self._patience:.0f} s"
        return None if self.fatal is None else f"fatal producer error: {self.fatal}"

    def close(self) -> None:
        """Drop whatever is still queued (its events stay claimed, for reconciling)."""
        self._producer.purge()
        self._producer.flush(0)
        self._producer.close()


def _delivered(result: BatchResult, event_id: int, error: KafkaError | None, msg: Message) -> None:
    if error is not None:
        result.failed[event_id] = error.str()
        if error.retriable() or error.code() in _OUTAGE_CODES:
            result.transient.add(event_id)
        return
    result.acked.append(event_id)
    where = (msg.topic() or "", msg.partition() or 0)
    after = (msg.offset() or 0) + 1
    if after > result.next_offsets.get(where, -1):
        result.next_offsets[where] = after


# Delivery errors that say the broker was unreachable or slow, not that it refused the event.
_OUTAGE_CODES = frozenset(
    {
        KafkaError._MSG_TIMED_OUT,
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NOT_ENOUGH_REPLICAS,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.NOT_LEADER_FOR_PARTITION,
    }
)


def _describe(exc: BaseException) -> str:
    error = exc.args[0] if exc.args else None
    return error.str() if isinstance(error, KafkaError) else str(exc)
