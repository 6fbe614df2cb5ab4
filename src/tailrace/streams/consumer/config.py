"""The consumer's settings, and the librdkafka configuration they make."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer as KafkaConsumer
from confluent_kafka import KafkaException

from ...engine.retry import RetryPolicy
from ...errors import ConfigurationError
from ...kafka_client import config_from_env
from .message import IdSource

DEFAULT_BOOTSTRAP = "localhost:9092"
DEFAULT_WINDOW_S = 24 * 3600.0
DEFAULT_RETRY = RetryPolicy(base_s=0.5, factor=2.0, max_s=30.0, jitter=0.5)
# A checkpoint (outputs acknowledged, ids marked, offsets committed) after this many
# messages or this many seconds, whichever comes first: what a SIGKILL can repeat.
DEFAULT_COMMIT_EVERY = 500
DEFAULT_COMMIT_INTERVAL_S = 1.0
DEFAULT_OFFSET_RESET = "earliest"
# ``KAFKA_CONSUMER_<NAME>`` sets the librdkafka property <name> (lower case, ``_`` -> ``.``),
# as the Kafka workers' deployments set their consumer; these names are taken already.
CONSUMER_ENV_PREFIX = "KAFKA_CONSUMER_"
_NOT_PROPERTIES = frozenset({"KAFKA_CONSUMER_GROUP"})  # the group: ``--group``
# The Java clients' names the Kafka workers' consumer used (kafka-python's), and what they
# are here: librdkafka ignores the first without a word and does not know the second.
_JAVA_NAMES = {
    "max.poll.records": "--batch-size N (the most messages handled per batch)",
    "fetch.max.wait.ms": "fetch.wait.max.ms, librdkafka's name for it",
}


def bootstrap_servers(explicit: str | None = None) -> str:
    """``--bootstrap-servers``, else ``KAFKA_BOOTSTRAP_SERVERS``, else localhost."""
    return explicit or os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or DEFAULT_BOOTSTRAP


def consumer_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """librdkafka consumer properties from the environment: ``KAFKA_AUTO_OFFSET_RESET``
    (``auto.offset.reset``) and every ``KAFKA_CONSUMER_<NAME>`` but the group, e.g.
    ``KAFKA_CONSUMER_FETCH_MIN_BYTES=1048576`` for ``fetch.min.bytes``."""
    environ = os.environ if environ is None else environ
    found: dict[str, str] = {}
    reset = environ.get("KAFKA_AUTO_OFFSET_RESET")
    if reset:
        found["auto.offset.reset"] = reset
    for name, value in environ.items():
        if name.startswith(CONSUMER_ENV_PREFIX) and name not in _NOT_PROPERTIES and value:
            prop = name.removeprefix(CONSUMER_ENV_PREFIX).lower().replace("_", ".")
            if prop:
                found[prop] = value
    return found


def parse_properties(pairs: Sequence[str], option: str) -> dict[str, str]:
    """``NAME=VALUE`` pairs (as ``--consumer-config`` takes them) as a mapping."""
    found: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ConfigurationError(f"{option} {pair!r}: expected NAME=VALUE")
        found[name.strip()] = value
    return found


# Offsets are committed by the consumer itself, only once messages are done.
_OWN = ("enable.auto.commit", "enable.auto.offset.store")


@dataclass(frozen=True)
class ConsumerConfig:
    """How a `Consumer` reads, retries, dead-letters and routes.

    `partitions` assigns those partitions of `topic` directly instead of joining the
    group's rebalancing (offsets are still committed under `group`): a consumer that must
    start at once, or the only one of its group.
    """

    topic: str
    group: str
    bootstrap_servers: str = field(default_factory=bootstrap_servers)
    attempts: int = 3
    retry: RetryPolicy = DEFAULT_RETRY
    dlq_topic: str | None = None  # None: ``<topic>_dlq``
    routes: Sequence[str] = ()
    id_source: IdSource = IdSource.AUTO
    id_field: str | None = None  # the body's field, for IdSource.BODY (default message_id)
    batch_size: int = 5000
    poll_timeout_s: float = 0.5
    # Messages waiting on a failing key (its retry, or its earlier messages): past this,
    # consumption pauses until retries clear, so memory stays bounded.
    max_waiting: int = 10_000
    # What a SIGKILL can repeat (see docs/streams.md): checkpoint this often.
    commit_every: int = DEFAULT_COMMIT_EVERY
    commit_interval_s: float = DEFAULT_COMMIT_INTERVAL_S
    partitions: Sequence[int] | None = None
    # librdkafka overrides (``producer.*``: of the routes' and dead letters' producer);
    # they win over the environment (`consumer_env`), which wins over the defaults
    kafka: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigurationError(f"attempts must be at least 1, not {self.attempts}")
        if self.batch_size < 1 or self.max_waiting < 1 or self.commit_every < 1:
            raise ConfigurationError("batch_size, max_waiting and commit_every must be at least 1")
        if self.commit_interval_s <= 0:
            raise ConfigurationError(
                f"commit_interval_s must be positive, not {self.commit_interval_s}"
            )

    @property
    def dead_letter_topic(self) -> str:
        return self.dlq_topic or f"{self.topic}_dlq"

    def consumer_settings(self, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
        """librdkafka consumer settings: manual commits, the environment's security and
        consumer properties, then `kafka`'s overrides."""
        settings: dict[str, Any] = {
            **config_from_env(environ),
            "auto.offset.reset": DEFAULT_OFFSET_RESET,
            "enable.partition.eof": False,
            # Bigger prefetch: the handler loop, not the fetch, should be the limit.
            "queued.min.messages": 200_000,
            "log.connection.close": False,
            **consumer_env(environ),
            "bootstrap.servers": self.bootstrap_servers,
            "group.id": self.group,
            # the overrides win over everything (a group.id of its own, say)
            **{k: v for k, v in self.kafka.items() if not k.startswith("producer.")},
        }
        for name, fix in _JAVA_NAMES.items():
            if name in settings:
                raise ConfigurationError(f"{name} is not a librdkafka property: use {fix}")
        for name in _OWN:
            if str(settings.get(name, "false")).lower() not in ("false", "0"):
                raise ConfigurationError(
                    f"{name} cannot be turned on: the consumer commits offsets itself, "
                    "only once messages are handled"
                )
            settings[name] = False
        return settings

    def producer_settings(self) -> dict[str, Any]:
        """Settings of the producer for routes and dead letters (``producer.*`` overrides)."""
        # Not from config_from_env alone: KAFKA_ENABLE_IDEMPOTENCE applies here too.
        overrides = {
            k.removeprefix("producer."): v
            for k, v in self.kafka.items()
            if k.startswith("producer.")
        }
        return {
            "enable.idempotence": "true",
            "acks": "all",
            "linger.ms": "5",
            "compression.type": "lz4",
            "log.connection.close": False,
            **config_from_env(),
            "bootstrap.servers": self.bootstrap_servers,
            **overrides,
        }


def kafka_consumer(settings: Mapping[str, Any]) -> KafkaConsumer:
    """A librdkafka consumer on `settings`; a name or value it refuses is a configuration
    error naming where such settings come from (not a traceback)."""
    try:
        return KafkaConsumer(dict(settings))
    except KafkaException as exc:
        reason = exc.args[0].str() if exc.args and hasattr(exc.args[0], "str") else str(exc)
        raise ConfigurationError(
            f"Kafka consumer settings: {reason} (set by KAFKA_CONSUMER_*, "
            "KAFKA_AUTO_OFFSET_RESET or --consumer-config)"
        ) from None
