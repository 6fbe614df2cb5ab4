"""Sending claimed outbox batches through an idempotent producer and collecting what the
broker acknowledged, event by event (delivery callbacks), with the offsets it gave them.

`send` hands a batch to the producer and returns at once; `wait` collects its reports. The
relay claims its next batch between the two, while the broker acknowledges this one."""

from __future__ import annotations

import logging
import time
from collections import defaultdict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from confluent_kafka import KafkaError, KafkaException, Message, Producer

# librdkafka logs a failed connection as an error on every retry: the sink's adapter
# makes it a warning.
from ...kafka_client import DEFAULT_CONFIG, LibrdkafkaLog, config_from_env, unique_client_id
from ..consumer.message import MESSAGE_ID_HEADER
from . import ID_HEADER

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


class Claimed(NamedTuple):
    """An event of a claimed batch, as read back from the outbox (a tuple: a batch makes
    thousands of them, straight from the rows)."""

    id: int
    topic: str
    key: str | None
    payload: bytes
    headers: list[list[str]] | None
    attempts: int


@dataclass
class BatchResult:
    """What became of each event of a batch."""

    sent: list[int] = field(default_factory=list)  # handed to the producer
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
    ident = b"%d" % event.id
    if not event.headers:  # the common case, kept cheap
        return [(MESSAGE_ID_HEADER, b"outbox-" + ident), (ID_HEADER, ident)]
    headers: list[tuple[str, str | bytes | None]] = [(name, value) for name, value in event.headers]
    if not any(name == MESSAGE_ID_HEADER for name, _ in headers):
        headers.append((MESSAGE_ID_HEADER, b"outbox-" + ident))
    # an application's own outbox table names its rows itself (table.py)
    if not any(name == ID_HEADER for name, _ in headers):
        headers.append((ID_HEADER, ident))
    return headers


class BatchPublisher:
    """Publishes batches on one idempotent producer; not thread-safe (the relay's loop
    owns it). After a fatal producer error, `publish` reports it (`BatchResult.broken`) and
    the relay makes a new publisher."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.fatal: str | None = None
        # One report callback for every message (a callable made per message cost as much
        # as the produce call); the batch being sent is the only one in the producer.
        self._result = BatchResult()
        self._sending: Sequence[Claimed] = ()
        self._failed_lookup: dict[tuple[bytes | None, bytes], deque[int]] | None = None
        self._producer = Producer(
            {
                **config,
                "error_cb": self._on_error,
                "on_delivery": self._on_report,
                "logger": LibrdkafkaLog(),
            }
        )
        timeout_ms = int(config.get("message.timeout.ms", RELAY_CONFIG["message.timeout.ms"]))
        self._patience = timeout_ms / 1000 + _GRACE_S

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal():
            self.fatal = error.str()
        elif error.code() == KafkaError._ALL_BROKERS_DOWN:
            log.warning("kafka: %s; retrying", error.str())
        else:
            log.debug("kafka: %s", error.str())

    def _on_report(self, error: KafkaError | None, msg: Message) -> None:
        result = self._result
        if error is None:
            where = (msg.topic() or "", msg.partition() or 0)
            after = (msg.offset() or 0) + 1
            if after > result.next_offsets.get(where, -1):
                result.next_offsets[where] = after
            return
        event_id = self._failed_event(msg)
        result.failed[event_id] = error.str()
        if error.code() in _PRODUCER_STATE_CODES:
            # The broker lost this producer's state (a restarted in-memory broker fences
            # it): not the event's fault, and this producer cannot go on; a new one can.
            result.transient.add(event_id)
            self.fatal = self.fatal or error.str()
        elif error.retriable() or error.code() in _OUTAGE_CODES:
            result.transient.add(event_id)

    def _failed_event(self, msg: Message) -> int:
        # A failure report carries no headers: the event is found by its key and payload
        # (a key's messages report in the order sent, so equal ones match in that order).
        if self._failed_lookup is None:
            self._failed_lookup = defaultdict(deque)
            for event in self._sending:
                key = None if event.key is None else event.key.encode()
                self._failed_lookup[(key, event.payload)].append(event.id)
        found = self._failed_lookup.get((msg.key(), msg.value() or b""))
        if not found:
            raise RuntimeError(f"a failure report for no event sent: {msg.topic()}")
        return found.popleft()

    def publish(self, batch: Sequence[Claimed]) -> BatchResult:
        """Send `batch` and wait until the broker acknowledged or refused every event."""
        return self.wait(self.send(batch))

    def send(self, batch: Sequence[Claimed]) -> BatchResult:
        """Hand `batch` to the producer; its result fills in as reports arrive (`wait`).

        A key's events after one the client refused outright are not sent (`unsent`): they
        keep their place behind it.
        """
        result = self._result = BatchResult()
        self._sending, self._failed_lookup = batch, None
        sent = result.sent
        refused_keys: set[str] = set()
        produce = self._producer.produce
        for event in batch:
            key = event.key
            if key is not None and key in refused_keys:
                result.unsent.append(event.id)
                continue
            if event.headers:
                headers = message_headers(event)
            else:  # the common case, inline
                ident = b"%d" % event.id
                headers = [(MESSAGE_ID_HEADER, b"outbox-" + ident), (ID_HEADER, ident)]
            while True:
                try:
                    produce(
                        event.topic,
                        event.payload,
                        None if key is None else key.encode(),
                        headers=headers,
                    )
                    sent.append(event.id)
                    break
                except BufferError:
                    self._producer.poll(0.05)  # the queue is full: serve reports, make room
                except KafkaException as exc:
                    result.failed[event.id] = _describe(exc)
                    if key is not None:
                        refused_keys.add(key)
                    break
        return result

    def wait(self, result: BatchResult) -> BatchResult:
        """Wait for the reports of everything sent (one batch at a time is in the producer).
        Every event sent without a failure report was acknowledged; with the producer
        broken, which were is unknown (the batch is read back from the topic)."""
        result.broken = self._flush()
        if result.broken is None:
            failed = result.failed
            result.acked = [i for i in result.sent if i not in failed]
        return result

    def _flush(self) -> str | None:
        started = time.monotonic()
        while (left := self._flush_once()) > 0:
            if self.fatal is not None:
                return f"fatal producer error: {self.fatal}"
            if time.monotonic() - started > self._patience:
                return f"{left} events unacknowledged after {self._patience:.0f} s"
        return None if self.fatal is None else f"fatal producer error: {self.fatal}"

    def _flush_once(self) -> int:
        try:
            return int(self._producer.flush(0.5))
        except (KafkaException, SystemError) as exc:
            # A fatal error (a restarted broker's UNKNOWN_PRODUCER_ID) can surface from
            # flush itself, through a report callback: this producer is done.
            self.fatal = self.fatal or str(exc)
            return 1

    def close(self) -> None:
        """Drop whatever is still queued (its events stay claimed, for reconciling)."""
        self._producer.purge()
        self._producer.flush(0)
        self._producer.close()


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


# Delivery errors about the idempotent producer's own state on the broker.
_PRODUCER_STATE_CODES = frozenset(
    {
        KafkaError.PRODUCER_FENCED,
        KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER,
        KafkaError.UNKNOWN_PRODUCER_ID,
        KafkaError.INVALID_PRODUCER_EPOCH,
    }
)


def _describe(exc: BaseException) -> str:
    error = exc.args[0] if exc.args else None
    return error.str() if isinstance(error, KafkaError) else str(exc)
