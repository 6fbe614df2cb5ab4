"""A Kafka producer behind a circuit breaker, spooling durably while the broker is away.

`BreakerProducer.send` returns at once in every state. While the circuit is closed, messages
go to an idempotent librdkafka producer. Outage failures (timeouts, transport errors, all
brokers down, a full queue) open it: the producer's queue is purged into the spool and new
messages are appended to the spool (durable before `send` returns). After a cooldown, a
probe sends the spool's first message; once it is acknowledged the spool drains in batches,
new messages joining behind, and the circuit closes when it is empty.

Order: every message gets a sequence number when sent, and the spool gives messages back in
that order (a message that failed in the queue after later ones were spooled still drains
first). The drain starts only once no message sent directly is unresolved, and new messages
go direct again only once the spool is empty, so a key's messages reach the broker in the
order they were sent.

Nothing lost, nothing published twice by the drain: a spooled message is removed only after
the broker acknowledged it, and the drain's producer is idempotent, so its own retries add no
copy. What remains: a crash between the broker's acknowledgement and the spool's removal
publishes that batch again on restart, and a direct message whose delivery timed out while
in flight may have been stored anyway and is then spooled and sent twice. Each message
carries a ``message_id`` header (``<spool>:<seq>``) for consumers to drop such copies.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, cast

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from ..errors import TailraceError

# librdkafka logs a failed connection as an error on every retry: the sink's adapter
# makes it a warning.
from ..kafka_client import (
    DEFAULT_CONFIG,
    LibrdkafkaLog,
    config_from_env,
    unique_client_id,
)
from . import producer_metrics
from .consumer.message import MESSAGE_ID_HEADER
from .spool import Headers, Spool, Spooled, SpoolError
from .spool.circuit import Circuit, CircuitState

log = logging.getLogger("tailrace.producer")

BREAKER_CONFIG: Mapping[str, str] = {
    **DEFAULT_CONFIG,
    "linger.ms": "5",
    "client.id": "tailrace-breaker",
}
_OUTAGE = frozenset(
    {
        KafkaError._MSG_TIMED_OUT,
        KafkaError._TIMED_OUT,
        KafkaError._PURGE_QUEUE,
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._UNKNOWN_TOPIC,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._FATAL,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NETWORK_EXCEPTION,
        KafkaError._PURGE_INFLIGHT,  # purged at close while in flight: spooled, not failed
    }
)
_GRACE_S = 10.0
_IDLE_POLL_S = 0.05


class ProducerError(TailraceError):
    """The producer refused a message outright (too large, an unknown setting…)."""


@dataclass(frozen=True, slots=True)
class FailedMessage:
    """A message the broker refused for good (not an outage): never spooled."""

    topic: str
    key: bytes | None
    value: bytes | None
    error: str


@dataclass(frozen=True)
class BreakerSettings:
    # The threshold: a message the broker has not acknowledged in this long opens the
    # circuit (librdkafka's message.timeout.ms).
    delivery_timeout_s: float = 10.0
    trip_when_brokers_down: bool = True  # open at once on librdkafka's "all brokers down"
    cooldown_s: float = 0.5  # before the first probe; doubles per failed probe
    max_cooldown_s: float = 30.0
    drain_batch: int = 2000
    producer: Mapping[str, str] = field(default_factory=dict)


def is_outage(error: KafkaError) -> bool:
    return error.retriable() or error.code() in _OUTAGE


def _kafka_headers(headers: Headers) -> list[tuple[str, str | bytes | None]]:
    # A list is invariant: the client's wider element type does not take ours as it is,
    # though it only reads it.
    return cast(list[tuple[str, str | bytes | None]], headers)


def _bytes(value: str | bytes | None) -> bytes | None:
    return value.encode() if isinstance(value, str) else value


class BreakerProducer:
    """Sends through Kafka, or the spool while Kafka is unreachable. Thread-safe `send`;
    a background thread serves delivery reports, probes and drains. Owns `spool`."""

    def __init__(
        self, bootstrap_servers: str, spool: Spool, settings: BreakerSettings | None = None
    ) -> None:
        self.settings = settings or BreakerSettings()
        self.spool = spool
        self._config: dict[str, Any] = {
            **BREAKER_CONFIG,
            "client.id": unique_client_id(BREAKER_CONFIG["client.id"]),
            "message.timeout.ms": str(int(self.settings.delivery_timeout_s * 1000)),
            **config_from_env(),
            **self.settings.producer,
            "bootstrap.servers": bootstrap_servers,
            "error_cb": self._on_error,
            "logger": LibrdkafkaLog(),
        }
        self._patience = int(self._config["message.timeout.ms"]) / 1000 + _GRACE_S
        self._lock = threading.RLock()
        self._circuit = Circuit(self.settings.cooldown_s, self.settings.max_cooldown_s)
        # Below 2**53 (a Redis score is a double), above anything a previous run spooled.
        self._seq = max(time.time_ns() // 1000, (spool.last_seq() or 0) + 1)
        if spool.count():
            self._circuit.trip(time.monotonic() - 1, "messages left in the spool")
        self._outstanding = 0
        self._to_spool: list[Spooled] = []
        self._failed: list[FailedMessage] = []
        self._fatal: str | None = None
        self._producer = Producer(self._config)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="breaker-producer", daemon=True)
        self._thread.start()
        producer_metrics.track(self)

    @property
    def state(self) -> CircuitState:
        return self._circuit.state

    def take_failed(self) -> list[FailedMessage]:
        """Messages refused for good since the last call (each returned once)."""
        with self._lock:
            failed, self._failed = self._failed, []
        return failed

    # -- sending ------------------------------------------------------------------------------

    def send(
        self,
        topic: str,
        value: bytes | str | None,
        key: bytes | str | None = None,
        headers: Mapping[str, str | bytes] | Sequence[tuple[str, str | bytes]] | None = None,
    ) -> None:
        """Send one message, or spool it durably; returns without waiting for the broker."""
        self.send_many([(topic, value, key, headers)])

    def send_many(
        self,
        messages: Iterable[
            tuple[str, bytes | str | None, bytes | str | None, Any]  # (topic, value, key, headers)
        ],
    ) -> None:
        """`send` for many, with one spool write for all of them while the circuit is open."""
        with self._lock:
            spooled: list[Spooled] = []
            for topic, value, key, headers in messages:
                entry = self._entry(topic, _bytes(value), _bytes(key), headers)
                if spooled or not self._produce_direct(entry):
                    spooled.append(entry)
            self.spool.append(spooled)

    def _entry(self, topic: str, value: bytes | None, key: bytes | None, headers: Any) -> Spooled:
        seq = self._seq
        self._seq += 1
        pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
        listed: Headers = [(str(name), _bytes(v)) for name, v in pairs]
        if not any(name == MESSAGE_ID_HEADER for name, _ in listed):
            listed.append((MESSAGE_ID_HEADER, f"{self.spool.name}:{seq}".encode()))
        return Spooled(seq, topic, key, value, listed)

    def _produce_direct(self, entry: Spooled) -> bool:
        """Hand `entry` to librdkafka if the circuit is closed; False when it must spool."""
        if self._circuit.state is not CircuitState.CLOSED:
            return False
        try:
            self._producer.produce(
                entry.topic,
                entry.value,
                entry.key,
                headers=_kafka_headers(entry.headers),
                on_delivery=partial(self._on_direct, entry),
            )
        except BufferError:
            self._trip("the producer's queue is full")
            return False
        except KafkaException as exc:
            raise ProducerError(f"cannot send to {entry.topic}: {exc}") from None
        self._outstanding += 1
        return True

    # -- delivery reports and errors (on the background thread) -----------------------------

    def _on_direct(self, entry: Spooled, error: KafkaError | None, message: Message) -> None:
        with self._lock:
            self._outstanding -= 1
            if error is None:
                return
            if is_outage(error):
                self._to_spool.append(entry)
                self._trip(error.str())
            else:
                self._failed.append(FailedMessage(entry.topic, entry.key, entry.value, error.str()))

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal():
            self._fatal = error.str()
            self._trip(f"fatal producer error: {error.str()}")
        elif error.code() == KafkaError._ALL_BROKERS_DOWN and self.settings.trip_when_brokers_down:
            self._trip(error.str())
        else:
            log.debug("kafka: %s", error.str())

    def _trip(self, reason: str) -> None:
        with self._lock:
            if self._circuit.trip(time.monotonic(), reason):
                log.warning("circuit open (%s): spooling to %s", reason, self.spool.name)
                # Messages still queued were never sent: fail them now (into the spool, by
                # their reports) rather than after the message timeout.
                self._producer.purge(in_queue=True, in_flight=False, blocking=False)

    # -- the background thread ----------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._step()
            except SpoolError as exc:  # the spool is down too: keep what we hold, retry
                log.error("%s", exc)
                self._stop.wait(1.0)
            except Exception:
                # this thread serves every delivery report: it must outlive any surprise
                log.exception("the producer's background step failed; retrying")
                self._stop.wait(1.0)

    def _step(self) -> None:
        self._producer.poll(_IDLE_POLL_S)
        self._spool_failures()
        if self._outstanding:
            return  # the drain waits until every direct message is settled
        if self._fatal is not None:
            self._replace_producer()
        if self._circuit.probe_due(time.monotonic()):
            self._probe()
        elif self._circuit.state is CircuitState.DRAINING:
            self._drain()

    def _spool_failures(self) -> None:
        with self._lock:
            entries, self._to_spool = self._to_spool, []
        if entries:
            try:
                self.spool.append(sorted(entries, key=lambda e: e.seq))
            except SpoolError:
                with self._lock:
                    self._to_spool[:0] = entries
                raise

    def _probe(self) -> None:
        self._circuit.state = CircuitState.HALF_OPEN
        head = self.spool.head(1)
        if head:
            error = self._publish(head)
        else:
            error = self._metadata_probe()
        if error is None:
            log.info("circuit probe passed: draining %s", self.spool.name)
            self._circuit.probe_passed()
        else:
            self._circuit.probe_failed(time.monotonic(), error)

    def _metadata_probe(self) -> str | None:
        try:
            self._producer.list_topics(timeout=2.0)
        except KafkaException as exc:
            return str(exc)
        return None

    def _drain(self) -> None:
        batch = self.spool.head(self.settings.drain_batch)
        if not batch:
            with self._lock:  # no send() can spool between the look and the switch
                if self.spool.count() == 0:
                    self._circuit.drained()
                    log.info("circuit closed: %s drained", self.spool.name)
            return
        error = self._publish(batch)
        if error is not None:
            self._circuit.probe_failed(time.monotonic(), error)

    def _publish(self, batch: Sequence[Spooled]) -> str | None:
        """Send spooled messages, wait for every report, remove the acknowledged ones.
        Returns the first outage error, if any."""
        acked: list[Spooled] = []
        errors: dict[int, KafkaError] = {}
        for entry in batch:
            while True:
                try:
                    self._producer.produce(
                        entry.topic,
                        entry.value,
                        entry.key,
                        headers=_kafka_headers(entry.headers),
                        on_delivery=partial(_drained, acked, errors, entry),
                    )
                    break
                except BufferError:  # the queue is full: room comes with acknowledgements
                    self._producer.poll(0.1)
                except KafkaException as exc:
                    # refused outright (too large for the broker, say): it joins the failed
                    # messages below rather than stopping the drain for good
                    errors[entry.seq] = exc.args[0]
                    break
        started = time.monotonic()
        while self._producer.flush(0.5) > 0:
            if time.monotonic() - started > self._patience or self._stop.is_set():
                self._producer.purge(in_queue=True, in_flight=False, blocking=False)
        refused = [e for e in batch if e.seq in errors and not is_outage(errors[e.seq])]
        with self._lock:
            self._failed.extend(
                FailedMessage(e.topic, e.key, e.value, errors[e.seq].str()) for e in refused
            )
        self.spool.remove(acked + refused)
        outages = [error.str() for error in errors.values() if is_outage(error)]
        return outages[0] if outages else None

    def _replace_producer(self) -> None:
        log.warning("replacing the producer after a fatal error: %s", self._fatal)
        with self._lock:
            old, self._producer = self._producer, Producer(self._config)
            self._fatal = None
        old.purge()
        old.flush(0)
        old.close()

    def drain_spool(self) -> bool:
        """Drain what others added to a shared spool while this producer's circuit was
        closed (their API's fallback pushes); True when there was some."""
        if self._circuit.state is CircuitState.CLOSED and self.spool.count():
            self._trip("messages in the spool")
            return True
        return False

    # -- the end ------------------------------------------------------------------------------

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until the circuit is closed, the spool empty and every message acknowledged;
        False if that took longer than `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                done = (
                    self._circuit.state is CircuitState.CLOSED
                    and not self._outstanding
                    and not self._to_spool
                )
            if done and self.spool.count() == 0:
                return True
            self._stop.wait(0.02)
        return False

    def close(self, timeout: float = 10.0) -> None:
        """Flush for up to `timeout` seconds; what is still unacknowledged then is spooled
        (a message in flight may be stored by the broker too: it would then arrive twice)."""
        self.flush(timeout)
        self._stop.set()
        self._thread.join()
        self._producer.purge(in_queue=True, in_flight=True, blocking=True)
        self._producer.poll(0)
        self._spool_failures()
        self._producer.close()
        producer_metrics.forget(self)
        self.spool.close()

    def __enter__(self) -> BreakerProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _drained(
    acked: list[Spooled],
    errors: dict[int, KafkaError],
    entry: Spooled,
    error: KafkaError | None,
    message: Message,
) -> None:
    if error is None:
        acked.append(entry)
    else:
        errors[entry.seq] = error
