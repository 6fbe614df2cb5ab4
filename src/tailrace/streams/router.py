"""Producing what a consumer sends on: the handler's outputs to their topics, and dead
letters. Everything produced for a batch is acknowledged (`flush`) before the batch's
offsets are committed, so a crash can repeat an output, never lose one."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka import Message as KafkaMessage

from ..errors import ConfigurationError, TailraceError
from ..observability import tracing
from .consumer.message import Headers, Output

log = logging.getLogger("tailrace.streams.router")

_FLUSH_ROUND_S = 0.5


class DeliveryError(TailraceError):
    """The broker did not take a message routed or dead-lettered by a consumer."""


class TopicRouter:
    """One producer for a consumer's outputs; `routes` are the topics of an `Output`
    that names none (reference 004's router: ``message_processing`` →
    ``message_status_updates``)."""

    def __init__(self, settings: Mapping[str, Any], routes: Sequence[str] = ()) -> None:
        self.routes = tuple(routes)
        self._errors: list[str] = []
        self.pending = 0  # produced since the last flush
        self._producer = Producer(
            {
                **settings,
                "on_delivery": self._delivered,
                "delivery.report.only.error": True,
                "logger": log,
            }
        )

    def _delivered(self, error: KafkaError | None, message: KafkaMessage) -> None:
        if error is not None:
            self._errors.append(f"{message.topic()}: {error.str()}")

    def send(self, outputs: Iterable[Output]) -> None:
        for output in outputs:
            topics = (output.topic,) if output.topic else self.routes
            if not topics:
                raise ConfigurationError(
                    "the handler returned an output without a topic and there is no route"
                )
            for topic in topics:
                headers = output.headers
                if tracing.enabled():  # the consumer's span continues downstream
                    headers = cast(Headers, tracing.inject_headers(headers))
                self.produce(topic, output.value, output.key, headers)

    def produce(
        self, topic: str, value: bytes | None, key: bytes | str | None, headers: Headers | None
    ) -> None:
        while True:
            try:
                # (name, bytes) pairs are what the client takes; its stub wants a wider list.
                self._producer.produce(topic, value, key, headers=cast(Any, headers))
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                self._producer.poll(0.05)
            except KafkaException as exc:
                raise DeliveryError(f"cannot produce to {topic}: {exc}") from exc
        self.pending += 1

    def flush(self) -> None:
        """Wait until everything produced is acknowledged; raise if any of it failed (the
        caller then stops before committing, and the inputs are consumed again)."""
        if self.pending:
            while self._producer.flush(_FLUSH_ROUND_S) > 0:
                pass
            self.pending = 0
        if self._errors:
            errors, self._errors = self._errors, []
            raise DeliveryError(f"{len(errors)} messages not delivered, first: {errors[0]}")

    def close(self) -> None:
        # Outputs of messages that were not committed are produced again on redelivery.
        self._producer.purge()
        self._producer.close()
