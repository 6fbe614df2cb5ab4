"""The Kafka sink: each event a message on one topic, sent through librdkafka.

Each message carries the event's original bytes as its value, the message id as its key
(when there is one: the default partitioner then keeps one id on one partition) and the
connection ids in a ``connection_ids`` header (when routed).

The producer is idempotent (``acks=all``): librdkafka retries what a broker failed to take,
without duplicates or reordering, until ``message.timeout.ms`` runs out. An event counts as
sent only once the broker has acknowledged it; `flush()` returns once every message written
is either acknowledged or has finally failed. Failed messages are kept, with their key,
route and error, for the caller to dead-letter (`KafkaSink.take_failed`): none is dropped
silently.

Connection settings beyond the URL come from the environment: ``KAFKA_SECURITY_PROTOCOL``,
``KAFKA_SASL_MECHANISM``, ``KAFKA_SASL_USERNAME``, ``KAFKA_SASL_PASSWORD`` and
``KAFKA_ENABLE_IDEMPOTENCE``. No message,
log line or repr shows the password.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from tailrace.pipeline.sinks.base import (
    FailedDelivery,
    FileMark,
    Keys,
    Routes,
    SinkBase,
    SinkError,
)
from tailrace.pipeline.sinks.url import SinkKind, SinkSpec

log = logging.getLogger("tailrace.sink.kafka")

ROUTE_HEADER = "connection_ids"
DEFAULT_MESSAGE_TIMEOUT_MS = 300_000

# Measured against Tansu with ~1 KB JSON events (warm producers, 200k events): lz4 doubled
# the events/s over no compression and cut the broker's CPU per event about 3x (JSON
# compresses well); a linger of 20 ms (librdkafka's default: 5) was as fast or a little
# faster and fills fuller batches, at no cost to `flush()`, which sends at once. Batches
# larger than librdkafka's 1 MB gained nothing.
DEFAULT_CONFIG: Mapping[str, str] = {
    "enable.idempotence": "true",
    "acks": "all",
    "linger.ms": "20",
    "compression.type": "lz4",
    "client.id": "tailrace",
    "message.timeout.ms": str(DEFAULT_MESSAGE_TIMEOUT_MS),
    # Idle connections closed by the broker are routine, not worth a log line each.
    "log.connection.close": "false",
}

ENVIRONMENT: Mapping[str, str] = {
    "KAFKA_SECURITY_PROTOCOL": "security.protocol",
    "KAFKA_SASL_MECHANISM": "sasl.mechanism",
    "KAFKA_SASL_USERNAME": "sasl.username",
    "KAFKA_SASL_PASSWORD": "sasl.password",
    # `false` for a broker whose idempotence support is broken: Tansu 0.6, restarted, can
    # answer a resent batch with "duplicate sequence" without having stored it, and the
    # producer then takes it as delivered. Without idempotence a resend may duplicate, never
    # lose.
    "KAFKA_ENABLE_IDEMPOTENCE": "enable.idempotence",
}
_Headers = list[tuple[str, str | bytes | None]] | None
_SECRET_KEYS = frozenset({"sasl.password", "ssl.key.password", "ssl.keystore.password"})

# How long `write()` waits for room in a full queue, and `flush()` for the last reports,
# beyond the message timeout (after which librdkafka fails every waiting message itself).
_GRACE_SECONDS = 30.0
_ROOM_POLL_SECONDS = 0.1
# `flush()` waits in rounds this long, so that a signal handler gets to run in between.
_FLUSH_ROUND_SECONDS = 0.5


class LibrdkafkaLog:
    """Takes librdkafka's log lines into `log`. A failed connection (``FAIL``), which
    librdkafka logs as an error each time it retries, becomes a warning: nothing is lost
    while it retries, and "all brokers down" is reported once, as a warning, already."""

    def log(self, level: int, msg: str, *args: object) -> None:
        if args and args[0] == "FAIL":
            level = min(level, logging.WARNING)
        log.log(level, msg, *args)


def unique_client_id(prefix: str) -> str:
    """A client id of this producer's own. Seen here: Tansu let idempotent producers that
    share a client id lose each other's batches while acknowledging them."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def config_from_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """librdkafka settings from the ``KAFKA_*`` variables that are set (see module doc)."""
    environ = os.environ if environ is None else environ
    return {key: environ[name] for name, key in ENVIRONMENT.items() if environ.get(name)}


class KafkaSink(SinkBase):
    """Produces each event to `topic` on the brokers of `bootstrap_servers`.

    `config` (librdkafka properties) overrides the environment, which overrides the
    defaults. Not thread-safe: one worker thread writes and flushes.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        *,
        config: Mapping[str, str] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.name = f"kafka sink {bootstrap_servers}/{topic}"
        settings = {
            **DEFAULT_CONFIG,
            "client.id": unique_client_id(DEFAULT_CONFIG["client.id"]),
            **config_from_env(environ),
            **(config or {}),
        }
        secrets = [settings[key] for key in _SECRET_KEYS if settings.get(key)]
        self._hide = _hider(secrets)
        try:
            timeout_ms = int(settings["message.timeout.ms"])
        except ValueError:
            raise SinkError(
                f"{self.name}: message.timeout.ms must be a whole number of milliseconds"
            ) from None
        # librdkafka gives up on a message after its timeout (0: never): waiting longer than
        # that, and a grace period, means something is stuck.
        self._patience = None if timeout_ms == 0 else timeout_ms / 1000 + _GRACE_SECONDS
        self._failed: list[FailedDelivery] = []
        self._failed_total = 0
        self._fatal: str | None = None
        self._callbacks: dict[str | None, Callable[[KafkaError | None, Message], None]] = {}
        producer_config: dict[str, Any] = {
            **settings,
            "bootstrap.servers": bootstrap_servers,
            "logger": LibrdkafkaLog(),
            "error_cb": self._on_error,
            "on_delivery": self._delivery_callback(None),
            # Only failures call back into Python: successes are counted in bulk at
            # `flush()`. (The Python client wants a bool here, and implements it itself.)
            "delivery.report.only.error": True,
        }
        try:
            self._producer = Producer(producer_config)
        except (KafkaException, ValueError, TypeError) as exc:
            raise SinkError(
                f"{self.name}: cannot create the producer: {self._hide(_describe(exc))}"
            ) from None

    @classmethod
    def from_spec(cls, spec: SinkSpec, *, config: Mapping[str, str] | None = None) -> KafkaSink:
        """The sink a ``kafka://`` URL names, with settings from the environment."""
        if spec.kind is not SinkKind.KAFKA or not spec.hosts or spec.topic is None:
            raise SinkError(f"not a kafka sink: {spec.display}")
        return cls(spec.bootstrap_servers, spec.topic, config=config)

    @property
    def failed(self) -> int:
        """Events that finally failed since the sink was opened (taken or not)."""
        return self._failed_total

    def take_failed(self) -> list[FailedDelivery]:
        """The failed events reported so far, each returned once: dead-letter them after
        `flush()` returns. (After `flush()` raised, the caller resumes from its checkpoint
        instead, which writes these events again.)"""
        failed, self._failed = self._failed, []
        return failed

    def write(
        self, batch: Sequence[bytes], *, keys: Keys | None = None, routes: Routes | None = None
    ) -> None:
        self._check_open()
        self._check_fatal()
        if not batch:
            return
        count = len(batch)
        if (keys is not None and len(keys) != count) or (
            routes is not None and len(routes) != count
        ):
            raise ValueError(f"{self.name}: keys and routes must run parallel to the batch")
        produce = self._producer.produce
        topic = self.topic
        self._written(count, sum(map(len, batch)))
        # Separate loops: the common shapes skip building unused arguments per event.
        if routes is None:
            for value, key in zip(batch, keys or (None,) * count, strict=True):
                try:
                    produce(topic, value, key)
                except BufferError:
                    self._produce_when_room(value, key, None)
                except KafkaException as exc:
                    self._refused(value, key, None, exc)
        else:
            # The report of a failure carries no headers: its callback knows the route.
            last_route: str | None = None
            on_delivery = self._delivery_callback(None)
            for value, key, route in zip(batch, keys or (None,) * count, routes, strict=True):
                headers: _Headers = None
                if route is not None:
                    headers = [(ROUTE_HEADER, route)]
                    if route != last_route:  # runs of one route are the common case
                        on_delivery = self._delivery_callback(route)
                        last_route = route
                elif last_route is not None:
                    on_delivery = self._delivery_callback(None)
                    last_route = None
                try:
                    produce(topic, value, key, on_delivery=on_delivery, headers=headers)
                except BufferError:
                    self._produce_when_room(value, key, route)
                except KafkaException as exc:
                    self._refused(value, key, route, exc)
        # Serve queued reports and log lines without waiting.
        self._producer.poll(0)

    def _produce_when_room(self, value: bytes, key: str | None, route: str | None) -> None:
        """Wait for the queue (``queue.buffering.max.*``) to make room, then produce.

        Room comes as the broker acknowledges, or as messages time out when it is away;
        past the message timeout and a grace period something is wrong with librdkafka.
        """
        headers: _Headers = None if route is None else [(ROUTE_HEADER, route)]
        started = time.monotonic()
        while True:
            self._producer.poll(_ROOM_POLL_SECONDS)
            self._check_fatal()
            try:
                self._producer.produce(
                    self.topic,
                    value,
                    key,
                    on_delivery=self._delivery_callback(route),
                    headers=headers,
                )
                return
            except BufferError:
                waited = time.monotonic() - started
                if self._patience is not None and waited > self._patience:
                    raise SinkError(
                        f"{self.name}: the producer queue stayed full for {waited:.0f} s"
                    ) from None
            except KafkaException as exc:
                self._refused(value, key, route, exc)
                return

    def _refused(
        self, value: bytes, key: str | None, route: str | None, exc: KafkaException
    ) -> None:
        """librdkafka refused the message outright (too large, for one): a failure."""
        error = exc.args[0] if exc.args else None
        if isinstance(error, KafkaError) and error.fatal():
            self._fatal = self._hide(error.str())
            self._check_fatal()
        self._record_failure(value, key, route, self._hide(_describe(exc)))

    def _delivery_callback(self, route: str | None) -> Callable[[KafkaError | None, Message], None]:
        callback = self._callbacks.get(route)
        if callback is None:
            if len(self._callbacks) >= 4096:  # many distinct routes: do not grow without end
                self._callbacks.clear()

            def callback(error: KafkaError | None, message: Message) -> None:
                # After close, the only reports left are of messages purged after a failed
                # flush: the caller resumes from its checkpoint, they are not dead letters.
                if error is not None and not self._closed:
                    key = message.key()
                    self._record_failure(
                        message.value() or b"",
                        None if key is None else key.decode("utf-8", "surrogateescape"),
                        route,
                        self._hide(error.str()),
                    )

            self._callbacks[route] = callback
        return callback

    def _record_failure(self, value: bytes, key: str | None, route: str | None, error: str) -> None:
        self._failed.append(FailedDelivery(value, key, route, error))
        self._failed_total += 1
        # Written, never delivered: out of what the next flush acknowledges.
        self._unacked.events -= 1
        self._unacked.bytes -= len(value)

    def _on_error(self, error: KafkaError) -> None:
        # Client-wide errors (brokers down, transport) are retried by librdkafka and logged
        # by it; a fatal one (the idempotent producer lost its guarantees) ends the sink.
        if error.fatal():
            self._fatal = self._hide(error.str())
        elif error.code() == KafkaError._ALL_BROKERS_DOWN:
            log.warning("%s: %s; retrying", self.name, self._hide(error.str()))
        else:
            log.debug("%s: %s", self.name, self._hide(error.str()))

    def _check_fatal(self) -> None:
        if self._fatal is not None:
            raise SinkError(f"{self.name}: fatal producer error: {self._fatal}")

    def flush(self, mark: FileMark | None = None) -> None:
        """Wait until the broker acknowledged, or librdkafka gave up on, every message.

        Raises `SinkError` on a fatal producer error (nothing since the last flush can be
        trusted then: the caller resumes from its checkpoint).
        """
        self._check_open()
        started = time.monotonic()
        while (left := self._producer.flush(_FLUSH_ROUND_SECONDS)) > 0:
            self._check_fatal()
            waited = time.monotonic() - started
            if self._patience is not None and waited > self._patience:
                raise SinkError(
                    f"{self.name}: {left} events still unacknowledged after {waited:.0f} s"
                )
        self._check_fatal()
        self._acknowledge()

    def _release(self) -> None:
        # After a failed flush, drop what is left rather than block on it: it was never
        # counted as sent, and the caller resumes from its checkpoint.
        self._producer.purge()
        self._producer.close()

    def __repr__(self) -> str:
        return f"KafkaSink({self.bootstrap_servers!r}, {self.topic!r})"


def _describe(exc: BaseException) -> str:
    error = exc.args[0] if exc.args else None
    return error.str() if isinstance(error, KafkaError) else str(exc)


def _hider(secrets: Sequence[str]) -> Callable[[object], str]:
    """Text with each secret replaced by ``***``."""

    def hide(text: object) -> str:
        shown = str(text)
        for secret in secrets:
            shown = shown.replace(secret, "***")
        return shown

    return hide
