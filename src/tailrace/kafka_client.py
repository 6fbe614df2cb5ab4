"""librdkafka client settings shared by every Kafka client tailrace opens: the reprocessing
sink (`tailrace.pipeline.sinks.kafka`), the streams' consumers, producers, outbox relay and
lag reader.

Connection settings beyond the bootstrap servers come from the environment:
``KAFKA_SECURITY_PROTOCOL``, ``KAFKA_SASL_MECHANISM``, ``KAFKA_SASL_USERNAME``,
``KAFKA_SASL_PASSWORD`` and ``KAFKA_ENABLE_IDEMPOTENCE`` (`config_from_env`). Each producer
gets a client id of its own (`unique_client_id`), and librdkafka's log lines go through
`LibrdkafkaLog` into Python logging.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping

# The name under which librdkafka's lines have always been logged (filters and tests use it).
log = logging.getLogger("tailrace.sink.kafka")

DEFAULT_MESSAGE_TIMEOUT_MS = 300_000
QUEUE_WINDOW = 100_000
# librdkafka's log lines: at most one per facility this often (see `LibrdkafkaLog`).
LIBRDKAFKA_LOG_EVERY_S = 10.0

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
    # The reader may run this far ahead of the broker's acknowledgements (librdkafka's
    # default, stated here as it is part of the duplicate bound: a killed worker resends at
    # most the events acknowledged in one checkpoint interval plus this window). 20,000 was
    # tried: duplicates per kill no lower, and slower in both paired bench runs.
    "queue.buffering.max.messages": str(QUEUE_WINDOW),
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


class LibrdkafkaLog:
    """Takes librdkafka's log lines into `log`. A failed connection (``FAIL``), which
    librdkafka logs as an error each time it retries, becomes a warning: nothing is lost
    while it retries, and "all brokers down" is reported once, as a warning, already.

    Rate-limited per facility (``FAIL``, ``REQTMOUT``...): at most one line each
    `LIBRDKAFKA_LOG_EVERY_S`, the next one saying how many were held back. A broker that is
    down made thousands of lines per attempt otherwise."""

    def __init__(
        self, every_s: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.every_s = LIBRDKAFKA_LOG_EVERY_S if every_s is None else every_s
        self._clock = clock
        self._last: dict[object, float] = {}
        self._held: dict[object, int] = {}

    def log(self, level: int, msg: str, *args: object) -> None:
        facility = args[0] if args else None
        if facility == "FAIL":
            level = min(level, logging.WARNING)
        now = self._clock()
        last = self._last.get(facility)
        if last is not None and now - last < self.every_s:
            self._held[facility] = self._held.get(facility, 0) + 1
            return
        self._last[facility] = now
        held = self._held.pop(facility, 0)
        if held:
            log.log(level, msg, *args, extra={"similar_lines_held_back": held})
        else:
            log.log(level, msg, *args)


def unique_client_id(prefix: str) -> str:
    """A client id of this producer's own. Seen here: Tansu let idempotent producers that
    share a client id lose each other's batches while acknowledging them."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def config_from_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """librdkafka settings from the ``KAFKA_*`` variables that are set (see module doc)."""
    environ = os.environ if environ is None else environ
    return {key: environ[name] for name, key in ENVIRONMENT.items() if environ.get(name)}
