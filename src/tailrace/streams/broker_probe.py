"""Whether a Kafka broker answers, for the readiness probes of `consume` and `outbox relay`.

It asks through an admin client of its own: a call into the process's consumer or producer
from the probe's thread would wait for their loop."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaException

# the settings that say where the brokers are and how to reach them; the rest (acks,
# batching, group) are the client's own business
_REACH = ("bootstrap.servers", "security.", "sasl.", "ssl.", "client.")


class BrokerProbe:
    """Answers `answers()` from the client settings `settings` (a producer's or a
    consumer's)."""

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self._settings = {
            k: v for k, v in settings.items() if k.startswith(_REACH) and k != "client.id"
        }
        self._admin: Any = None
        self._lock = threading.Lock()

    def answers(self, topic: str | None = None, timeout_s: float = 2.0) -> bool:
        """Whether a broker answers a metadata request (for `topic`, else for the cluster)
        within `timeout_s`."""
        with self._lock:
            if self._admin is None:
                from confluent_kafka.admin import AdminClient

                self._admin = AdminClient(dict(self._settings))
            admin = self._admin
        try:
            admin.list_topics(topic, timeout=timeout_s)
        except KafkaException:
            return False
        return True
