"""Prometheus metrics of the outbox relay (served by `tailrace outbox relay --metrics-port`,
with its probes): events published and failed, how long the broker took per batch, and the
outbox's events by status, read from the database at scrape time (at most every
`COUNTS_MAX_AGE_S`: every relay pod is scraped, and the count walks the unpublished rows).

``tailrace_outbox_events{status="pending"}`` is what the Kafka workers'
``outbox_pending_events`` measured (see the recording rules in deploy/kubernetes/monitoring)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ...db.connection import PROMPT, connect
from ...observability import server
from ...observability.health import Check, CheckFailed, Health
from ..broker_probe import BrokerProbe
from . import OutboxStatus, counts

COUNTS_MAX_AGE_S = 5.0

REGISTRY = CollectorRegistry(auto_describe=True)

PUBLISHED = Counter(
    "tailrace_outbox_published_events",
    "Outbox events the broker acknowledged (published by this relay)",
    registry=REGISTRY,
)
FAILED = Counter(
    "tailrace_outbox_failed_attempts",
    "Outbox events whose attempt failed (retried later, or dead after the last)",
    registry=REGISTRY,
)
BATCH_SECONDS = Histogram(
    "tailrace_outbox_batch_seconds",
    "Time from sending a batch to the broker's last report on it",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)


class _Database:
    """One prompt connection, shared by the scrape and the readiness probe, reopened after
    a failure (a probe must answer within its timeout however long an outage lasts)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None

    def run(self, op: Any) -> Any:
        with self.lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = connect(self.url, PROMPT)
                return op(self._conn)
            except Exception:
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
                raise

    def close(self) -> None:
        with self.lock:
            if self._conn is not None:
                self._conn.close()
            self._conn = None


Counts = Callable[[psycopg.Connection[Any]], Mapping[OutboxStatus, int]]


class OutboxCollector(Collector):
    """``tailrace_outbox_events{status}``: pending, publishing and dead events now."""

    def __init__(self, db: _Database, count: Counts = counts) -> None:
        self.db = db
        self.count = count
        self._value: Mapping[OutboxStatus, int] | None = None
        self._read_at = 0.0

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self._value is None or time.monotonic() - self._read_at > COUNTS_MAX_AGE_S:
            self._value, self._read_at = self.db.run(self.count), time.monotonic()
        family = GaugeMetricFamily(
            "tailrace_outbox_events",
            "Outbox events by status (pending: waiting for a relay; publishing: in a batch "
            "sent or about to be; dead: moved aside after their last attempt)",
            labels=["status"],
        )
        for status, n in sorted(self._value.items(), key=lambda item: item[0].value):
            if status is not OutboxStatus.PUBLISHED:  # a running total, not a level
                family.add_metric([status.value], n)
        yield family


def serve(
    url: str,
    port: int,
    addr: str = "127.0.0.1",
    *,
    count: Counts = counts,
    kafka: Mapping[str, Any] | None = None,
) -> server.ProbeServer:
    """Expose the relay's metrics and probes on ``http://addr:port/``: ready while the
    database answers and, with `kafka` (the relay's producer settings), a broker does too.
    `count` reads the events by status (an application's own table, relayed with
    ``--table``, has only pending ones to count)."""
    db = _Database(url)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(OutboxCollector(db, count))

    def database() -> dict[str, Any]:
        db.run(lambda conn: conn.execute("SELECT 1").fetchone())
        return {}

    ready = [Check("database", database, cache_s=2.0)]
    if kafka is not None:
        ready.append(broker_check(kafka))
    health = Health(ready=ready)
    return server.serve([REGISTRY, registry], health, host=addr, port=port)


def broker_check(kafka: Mapping[str, Any]) -> Check:
    """Ready while a broker answers: a relay that cannot reach one publishes nothing, and
    its events wait in the outbox."""
    probe = BrokerProbe(kafka)

    def answered() -> dict[str, Any]:
        if not probe.answers():
            raise CheckFailed(f"no broker answers at {kafka.get('bootstrap.servers')}")
        return {}

    return Check("kafka", answered, cache_s=2.0)
