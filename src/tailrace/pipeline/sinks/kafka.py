"""The Kafka sink: each event a message on one topic, sent through librdkafka.

Each message carries the event's original bytes as its value, the message id as its key
(when there is one: the default partitioner then keeps one id on one partition) and the
connection ids in a ``connection_ids`` header (when routed).

The producer is idempotent (``acks=all``): librdkafka retries what a broker failed to take,
without duplicates or reordering, until ``message.timeout.ms`` runs out. An event counts as
sent only once the broker has acknowledged it; `flush()` returns only once every message
written since the last flush is acknowledged, or refused for itself, or it raises.

Two kinds of failure, told apart by the error's code:

- a message the broker refuses for itself (too large, an invalid record) is bad input: it
  is kept, with its key, route and error, for the caller to dead-letter
  (`KafkaSink.take_failed`);
- anything else is the sink being unavailable (timeouts, transport errors, all brokers
  down, an unknown topic, a fatal producer error such as the idempotent producer losing
  its sequence): never a dead letter. `flush()` (or `write()`) raises `SinkError`, the
  sink is closed without waiting, and the caller resumes the file from its checkpoint
  with a new producer. Nothing past the checkpoint was counted, so nothing is lost;
  what the broker took past it comes again (the duplicate bound).

A producer that no broker has answered since it opened (a wrong host, a broker that is not
running) gives up after ``KAFKA_CONNECT_TIMEOUT_S`` (default 30 s) with a message saying so;
`tailrace reprocess` checks that a broker accepts connections before it plans the job at all
(`tailrace.pipeline.sinks.reach`). librdkafka's own log lines are rate-limited per facility.

Once a broker has answered, while it does not answer, `flush()` waits, logging "sink
unavailable" at most every `UNAVAILABLE_LOG_S` seconds, and gives up (`SinkError`,
resumable) once nothing was acknowledged for the outage timeout: ``KAFKA_OUTAGE_TIMEOUT_S``
(default 300 s). Every error librdkafka reports (delivery reports, ``error_cb``,
`KafkaException`, exceptions out of its calls) ends in one of these two ways; none escapes
as anything but `SinkError`.

What a job gets, by fault (the worker checkpoints after each `flush()`):

- a worker SIGKILLed: nothing lost; it resends what it wrote since its last checkpoint,
  so duplicates per kill are at most the events acknowledged in one checkpoint interval
  plus the producer window (``queue.buffering.max.messages``, `QUEUE_WINDOW`: how far the
  reader may run ahead of the acknowledgements);
- a broker outage shorter than the outage timeout: the worker waits (logging "sink
  unavailable"), then goes on; nothing lost, no duplicate from the wait itself;
- a longer outage, a message librdkafka gives up on, or a fatal producer error: `SinkError`,
  the file goes back to pending with that error and resumes from its checkpoint with a new
  producer (up to the file's attempts; then it fails, and the job with it): nothing lost,
  duplicates as for a kill;
- a broker that acknowledges what it did not store (Tansu 0.6, restarted, can answer a
  resent batch "duplicate sequence", which librdkafka takes as delivered): no client can
  tell; ``KAFKA_ENABLE_IDEMPOTENCE=false`` avoids that answer.

Connection settings beyond the URL come from the environment (`tailrace.kafka_client`:
``KAFKA_SECURITY_PROTOCOL``, ``KAFKA_SASL_*``, ``KAFKA_ENABLE_IDEMPOTENCE``);
``KAFKA_OUTAGE_TIMEOUT_S`` is read by the sink itself. No message,
log line or repr shows the password.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from tailrace.kafka_client import DEFAULT_CONFIG, LibrdkafkaLog, config_from_env, unique_client_id
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
DEFAULT_OUTAGE_TIMEOUT_S = 300.0
OUTAGE_TIMEOUT_ENV = "KAFKA_OUTAGE_TIMEOUT_S"
# While nothing is acknowledged: a "sink unavailable" warning after this long, and again
# at most this often.
UNAVAILABLE_LOG_S = 10.0

# Errors that are about the message itself, not the broker's availability: the only
# delivery failures that become dead letters.
BAD_MESSAGE_ERRORS = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.INVALID_MSG,  # corrupt message
        KafkaError.INVALID_MSG_SIZE,
        KafkaError.INVALID_RECORD,
        KafkaError.RECORD_LIST_TOO_LARGE,
    }
)

_Headers = list[tuple[str, str | bytes | None]] | None
_SECRET_KEYS = frozenset({"sasl.password", "ssl.key.password", "ssl.keystore.password"})

_ROOM_POLL_SECONDS = 0.1
# A stopping worker gives up a wait with no progress for this long (a short flush of a
# cancelled file, with the broker answering, still completes).
_STOP_AFTER_STALL_S = 1.0
# `flush()` waits in rounds this long, so that a signal handler gets to run in between.
_FLUSH_ROUND_SECONDS = 0.5
# A producer that no broker ever answered gives up after this long (KAFKA_CONNECT_TIMEOUT_S),
# not the outage timeout: a wrong host or a broker that is not running fails the file's
# attempt in seconds with a message that says so.
CONNECT_TIMEOUT_ENV = "KAFKA_CONNECT_TIMEOUT_S"
DEFAULT_CONNECT_TIMEOUT_S = 30.0


class KafkaSink(SinkBase):
    """Produces each event to `topic` on the brokers of `bootstrap_servers`.

    `config` (librdkafka properties) overrides the environment, which overrides the
    defaults. Not thread-safe: one worker thread writes and flushes. Once it raised
    `SinkError` for an unavailable broker or a fatal producer error, the sink is broken:
    every call raises again and `close()` drops what is queued; open a new one.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        *,
        config: Mapping[str, str] | None = None,
        environ: Mapping[str, str] | None = None,
        outage_timeout_s: float | None = None,
    ) -> None:
        super().__init__()
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.name = f"kafka sink {bootstrap_servers}/{topic}"
        environ = os.environ if environ is None else environ
        settings = {
            **DEFAULT_CONFIG,
            "client.id": unique_client_id(DEFAULT_CONFIG["client.id"]),
            **config_from_env(environ),
            **(config or {}),
        }
        secrets = [settings[key] for key in _SECRET_KEYS if settings.get(key)]
        self._hide = _hider(secrets)
        try:
            int(settings["message.timeout.ms"])
        except ValueError:
            raise SinkError(
                f"{self.name}: message.timeout.ms must be a whole number of milliseconds"
            ) from None
        self.outage_timeout_s = (
            outage_timeout_s if outage_timeout_s is not None else _outage_timeout(environ)
        )
        self.connect_timeout_s = min(
            _positive_seconds(environ, CONNECT_TIMEOUT_ENV, DEFAULT_CONNECT_TIMEOUT_S),
            self.outage_timeout_s,
        )
        self._opened_at = time.monotonic()
        self._answered = False  # a broker acknowledged something to this producer
        self._failed: list[FailedDelivery] = []
        self._failed_total = 0
        # Why the sink cannot go on; set from librdkafka's threads' callbacks as well.
        self._fatal: str | None = None
        self._unavailable: str | None = None
        # A message purged from the queue: librdkafka purges after a fatal error, whose own
        # report may come after the purged messages' reports (see `_check_broken`).
        self._purged: str | None = None
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
        """Events refused for themselves since the sink was opened (taken or not)."""
        return self._failed_total

    @property
    def broken(self) -> bool:
        """Whether the sink gave up (unavailable broker, fatal producer error)."""
        return self._fatal is not None or self._unavailable is not None or self._purged is not None

    def take_failed(self) -> list[FailedDelivery]:
        """The events refused for themselves so far, each returned once: dead-letter them
        after `flush()` returns. (After `flush()` raised, the caller resumes from its
        checkpoint instead, which writes these events again.)"""
        failed, self._failed = self._failed, []
        return failed

    def write(
        self, batch: Sequence[bytes], *, keys: Keys | None = None, routes: Routes | None = None
    ) -> None:
        self._check_open()
        self._check_broken()
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
        try:
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
            self._call(self._producer.poll, 0)
        except SinkError:
            raise
        except Exception as exc:  # anything else out of librdkafka: the sink cannot go on
            self._give_up(exc)
        self._check_broken()

    def _produce_when_room(self, value: bytes, key: str | None, route: str | None) -> None:
        """Wait for the queue (``queue.buffering.max.*``) to make room, then produce.

        Room comes as the broker acknowledges; while it does not, this waits visibly, up
        to the outage timeout.
        """
        headers: _Headers = None if route is None else [(ROUTE_HEADER, route)]
        outage = _Outage(self)
        while True:
            self._call(self._producer.poll, _ROOM_POLL_SECONDS)
            self._check_broken()
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
                outage.waiting(len(self._producer), "for room in the producer queue")
            except KafkaException as exc:
                self._refused(value, key, route, exc)
                return

    def _refused(
        self, value: bytes, key: str | None, route: str | None, exc: KafkaException
    ) -> None:
        """librdkafka refused the message outright: bad input (too large) is a failure to
        dead-letter; anything else (a fatal state, an unknown topic) breaks the sink."""
        error = exc.args[0] if exc.args else None
        if isinstance(error, KafkaError) and _bad_message(error):
            self._record_failure(value, key, route, self._hide(_describe(exc)))
            return
        self._give_up(exc)

    def _delivery_callback(self, route: str | None) -> Callable[[KafkaError | None, Message], None]:
        callback = self._callbacks.get(route)
        if callback is None:
            if len(self._callbacks) >= 4096:  # many distinct routes: do not grow without end
                self._callbacks.clear()

            def callback(error: KafkaError | None, message: Message) -> None:
                # After close, the only reports left are of messages purged after a failed
                # flush: the caller resumes from its checkpoint, they are not dead letters.
                if error is None or self._closed:
                    return
                try:
                    if _bad_message(error):
                        key = message.key()
                        self._record_failure(
                            message.value() or b"",
                            None if key is None else key.decode("utf-8", "surrogateescape"),
                            route,
                            self._hide(error.str()),
                        )
                    else:
                        self._broke(error)
                except Exception as exc:  # never out of a callback: see `_callback_failed`
                    self._callback_failed(exc)

            self._callbacks[route] = callback
        return callback

    def _record_failure(self, value: bytes, key: str | None, route: str | None, error: str) -> None:
        self._failed.append(FailedDelivery(value, key, route, error))
        self._failed_total += 1
        # Written, never delivered: out of what the next flush acknowledges.
        self._unacked.events -= 1
        self._unacked.bytes -= len(value)

    def _on_error(self, error: KafkaError) -> None:
        # Client-wide errors (brokers down, transport) are retried by librdkafka; `flush()`
        # says when they last too long. A fatal one (the idempotent producer lost its
        # guarantees) ends this producer: the caller resumes with a new one.
        try:
            if _is_fatal(error):
                self._broke(error)
            else:
                log.debug("%s: %s", self.name, self._hide(error.str()))
        except Exception as exc:  # never out of a callback
            self._callback_failed(exc)

    def _callback_failed(self, exc: Exception) -> None:
        # Seen here: after a fatal error `flush()` goes on serving delivery reports with the
        # fatal `KafkaException` still pending, so the first call into the client from the
        # callback raises `SystemError` (its context: that exception); caught, `flush()`
        # then fails with a bare `SystemError`. The error that counts is in the chain.
        error = _kafka_error_in(exc)
        if error is not None:
            self._broke(error)
        else:
            self._unavailable = self._unavailable or self._hide(
                f"{type(exc).__name__}: {_describe(exc)}"
            )

    def _broke(self, error: KafkaError) -> None:
        text = self._hide(error.str())
        if _is_fatal(error):
            self._fatal = self._fatal or text
        elif error.code() in (KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT):
            self._purged = self._purged or text
        else:
            self._unavailable = self._unavailable or text

    def _give_up(self, exc: Exception) -> None:
        """An exception out of librdkafka: mark the sink broken and raise `SinkError`."""
        self._callback_failed(exc)
        self._check_broken()

    def _call(self, method: Callable[[float], int], timeout: float) -> int:
        """A `poll()` or `flush()` of the producer, its exceptions turned into `SinkError`
        (an exception a callback raised comes out here, as may a fatal error)."""
        try:
            return method(timeout)
        except SinkError:
            raise
        except Exception as exc:
            self._give_up(exc)
            raise  # not reached: _give_up raises

    def _check_broken(self) -> None:
        if self._fatal is None and self._unavailable is None and self._purged is not None:
            # Purged messages: the fatal error that caused the purge may still be queued
            # behind their reports; serve it so that the reason given is the real one.
            try:
                self._producer.poll(0)
            except Exception as exc:
                self._callback_failed(exc)
            self._unavailable = self._unavailable or self._purged
        if self._fatal is not None:
            raise SinkError(
                f"{self.name}: fatal producer error: {self._fatal}; "
                "the file resumes from its checkpoint with a new producer"
            )
        if self._unavailable is not None:
            raise SinkError(
                f"{self.name}: sink unavailable: {self._unavailable}; "
                "the file resumes from its checkpoint"
            )

    def flush(self, mark: FileMark | None = None) -> None:
        """Wait until the broker acknowledged every message written since the last flush
        (or refused one for itself: see `take_failed`).

        Raises `SinkError` on a fatal producer error, on a message librdkafka gave up on,
        or once nothing was acknowledged for the outage timeout: nothing since the last
        flush counts as sent then, and the caller resumes from its checkpoint.
        """
        self._check_open()
        self._check_broken()
        outage = _Outage(self)
        while (left := self._call(self._producer.flush, _FLUSH_ROUND_SECONDS)) > 0:
            self._check_broken()
            outage.waiting(left, "for acknowledgements")
        self._check_broken()
        if self._unacked.events > 0:
            self._answered = True
        self._acknowledge()

    def close(self) -> None:
        """Flush and release; a broken sink is released at once (what it holds is resent
        from the caller's checkpoint)."""
        if self._closed:
            return
        if self.broken:
            self._closed = True
            self._release()
            return
        super().close()

    def _release(self) -> None:
        # After a failed flush, drop what is left rather than block on it: it was never
        # counted as sent, and the caller resumes from its checkpoint.
        try:
            self._producer.purge()
            self._producer.flush(0)  # serve the purged messages' reports
        except Exception as exc:
            log.debug("%s: purge on close: %s", self.name, self._hide(_describe(exc)))
        try:
            self._producer.close()
        except Exception as exc:
            log.debug("%s: close: %s", self.name, self._hide(_describe(exc)))

    def __repr__(self) -> str:
        return f"KafkaSink({self.bootstrap_servers!r}, {self.topic!r})"


class _Outage:
    """One wait for the broker: logs "sink unavailable" while nothing is acknowledged (at a
    bounded rate) and raises `SinkError` once that lasted the sink's outage timeout."""

    def __init__(self, sink: KafkaSink) -> None:
        self.sink = sink
        self.left: int | None = None
        self.since = time.monotonic()  # the last progress
        self.every = min(UNAVAILABLE_LOG_S, sink.outage_timeout_s / 2)
        self.next_log = self.since + self.every

    def waiting(self, left: int, what: str) -> None:
        now = time.monotonic()
        if self.left is not None and left < self.left:
            self.sink._answered = True
        if self.left is None or left < self.left:
            self.since = now
            self.next_log = max(self.next_log, now + self.every)
        self.left = left
        stalled = now - self.since
        sink = self.sink
        unanswered = now - sink._opened_at
        if not sink._answered and unanswered > sink.connect_timeout_s:
            sink._unavailable = sink._unavailable or (
                f"no broker answered in {unanswered:.0f} s since the sink opened "
                f"({CONNECT_TIMEOUT_ENV}={sink.connect_timeout_s:g}): is the broker up, and "
                "are the host and port in --sink right?"
            )
            sink._check_broken()
        if sink.stopping and stalled > _STOP_AFTER_STALL_S:
            sink._unavailable = sink._unavailable or (
                f"the worker is stopping; {left} events unacknowledged for {stalled:.0f} s"
            )
            sink._check_broken()
        if stalled > sink.outage_timeout_s:
            sink._unavailable = sink._unavailable or (
                f"nothing acknowledged for {stalled:.0f} s, {left} events waiting "
                f"(outage timeout {sink.outage_timeout_s:g} s)"
            )
            sink._check_broken()
        if now >= self.next_log:
            self.next_log = now + self.every
            log.warning(
                "sink unavailable: waiting %s",
                what,
                extra={
                    "sink": sink.name,
                    "unacknowledged": left,
                    "stalled_s": round(stalled, 1),
                    "outage_timeout_s": sink.outage_timeout_s,
                },
            )


def _is_fatal(error: KafkaError) -> bool:
    # After a fatal error librdkafka refuses each produce with `_FATAL`, not flagged fatal.
    return bool(error.fatal()) or error.code() == KafkaError._FATAL


def _kafka_error_in(exc: BaseException | None) -> KafkaError | None:
    """The `KafkaError` an exception carries, or one of the exceptions it arose from."""
    seen = 0
    while exc is not None and seen < 8:
        error = exc.args[0] if exc.args else None
        if isinstance(error, KafkaError):
            return error
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def _bad_message(error: KafkaError) -> bool:
    return error.code() in BAD_MESSAGE_ERRORS and not _is_fatal(error)


def _outage_timeout(environ: Mapping[str, str]) -> float:
    return _positive_seconds(environ, OUTAGE_TIMEOUT_ENV, DEFAULT_OUTAGE_TIMEOUT_S)


def _positive_seconds(environ: Mapping[str, str], name: str, default: float) -> float:
    text = environ.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise SinkError(f"{name} must be a positive number of seconds, not {text!r}")
    return value


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
