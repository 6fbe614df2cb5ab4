"""Relaying an outbox table the application already has, as it is: its writers unchanged.

The table is read through a column mapping (`TableMapping`; its defaults are the
``outbox_events`` table of the Kafka workers' poller: ``published``, ``published_at``, a
``version`` retry counter from 1 and ``error_message``). A round claims the next unpublished
events in order (``created_at, id``), sends them through an idempotent producer, then marks
the acknowledged ones published (and ``published_at``); a refused event gets an attempt
counted and its error kept, and after ``max_attempts`` it stays unpublished and holds its
key's later events (to requeue it: ``UPDATE outbox_events SET version = 1 WHERE id = …``).
A failure of the broker rather than of the event (an outage) counts nothing: the relay backs
off and tries again however long it lasts.

One relay per table is active (a session advisory lock; the others wait for it), so a key's
events reach the broker in order. Published at least once: a relay killed between the
broker's acknowledgement and the mark sends that batch again; each message carries the
event id in a ``message_id`` header for consumers to drop the copy. A lost database
connection ends the relay with the error (its supervisor restarts it; what it had sent and
not marked goes again): unlike tailrace's own relay it does not ride out the outage.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from ...db.queries import load_queries
from ...engine.retry import RetryPolicy
from ...errors import ConfigurationError
from ..consumer.message import MESSAGE_ID_HEADER
from . import ID_HEADER, OutboxStatus, metrics
from .publish import BatchPublisher, Claimed, producer_config
from .relay import _cut_behind_retries

log = logging.getLogger("tailrace.outbox.table")

_Q = load_queries(__package__ or "tailrace.streams.outbox", "table.sql")
ROLES = ("id", "order", "key", "topic", "value", "published", "published_at", "attempts", "error")


@dataclass(frozen=True)
class TableMapping:
    """Which SQL gives each part of an event. Each is a column or an expression of the row
    (``aggregate_id::text``, a ``CASE`` on ``event_type``, ``jsonb_build_object(…)``), written
    by the operator into the statements as it is. ``published_at`` and ``error`` may be
    empty (no such column); ``attempts_base`` is the attempts column's value before any
    attempt (the reference's ``version`` starts at 1)."""

    table: str = "outbox_events"
    id: str = "id"
    order: str = "created_at, id"
    key: str = "aggregate_id"
    topic: str = "event_type"
    value: str = "payload"
    published: str = "published"
    published_at: str = "published_at"
    attempts: str = "version"
    error: str = "error_message"
    attempts_base: int = 1

    def with_columns(self, pairs: Mapping[str, str]) -> TableMapping:
        unknown = sorted(set(pairs) - set(ROLES))
        if unknown:
            raise ConfigurationError(f"--column {unknown[0]}: the roles are {', '.join(ROLES)}")
        return TableMapping(**{**vars(self), **pairs})

    def statement(self, name: str) -> sql.Composed:
        def raw(text: str) -> sql.SQL:
            # a literal % of the operator's SQL (LIKE 'message.%') is not a placeholder
            return sql.SQL(text.replace("%", "%%"))

        parts: dict[str, sql.Composable] = {role: raw(getattr(self, role)) for role in ROLES}
        parts["table"] = raw(self.table)
        parts["published_at"] = raw(f", {self.published_at} = now()" if self.published_at else "")
        parts["error"] = (
            sql.SQL(", {} = %(error)s").format(raw(self.error)) if self.error else sql.SQL("")
        )
        return sql.SQL(_Q[name]).format(**parts)


@dataclass(frozen=True)
class TableRelaySettings:
    batch_size: int = 100
    max_attempts: int = 3
    poll_interval_s: float = 0.5
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(base_s=1.0, max_s=60.0))
    producer: Mapping[str, str] = field(default_factory=dict)


@dataclass
class TableRelayStats:
    published: int = 0
    failed: int = 0
    batches: int = 0


class TableRelay:
    """Relays `mapping.table` of `database_url` to the brokers until stopped."""

    def __init__(
        self,
        database_url: str,
        bootstrap_servers: str,
        mapping: TableMapping | None = None,
        settings: TableRelaySettings | None = None,
    ) -> None:
        self.mapping = mapping or TableMapping()
        self.settings = settings or TableRelaySettings()
        self.stats = TableRelayStats()
        self._conn = psycopg.connect(database_url, autocommit=True)
        # published_at gets UTC wall time in a timestamp column, as the poller wrote it
        self._conn.execute("SET TIME ZONE 'UTC'")
        self._claim = self.mapping.statement("claim")
        self._published = self.mapping.statement("published")
        self._failed = self.mapping.statement("failed")
        self._config = producer_config(bootstrap_servers, self.settings.producer)
        self._publisher = BatchPublisher(self._config)
        self._failures = 0  # rounds in a row that failed: the backoff

    def pending(self) -> int:
        return pending(self._conn, self.mapping)

    def run(
        self, stop: threading.Event | None = None, *, until_idle: bool = False
    ) -> TableRelayStats:
        stop = stop or threading.Event()
        if not self._lock(stop):
            return self.stats
        while not stop.is_set():
            claimed = self.run_once()
            if claimed and not self._failures:
                continue
            if not claimed and until_idle:
                break
            wait = self.settings.poll_interval_s
            if self._failures:  # a failed round backs off, doubling (their 1 s, 2 s, 4 s)
                wait = max(wait, self.settings.retry.delay(self._failures))
            stop.wait(wait)
        return self.stats

    def _lock(self, stop: threading.Event) -> bool:
        table = self.mapping.table
        while not stop.is_set():
            row = self._conn.execute(_Q["lock"], {"table": table}).fetchone()
            if row and row[0]:
                return True
            log.info("another relay holds %s: waiting", table)
            stop.wait(max(1.0, self.settings.poll_interval_s))
        return False

    def run_once(self) -> int:
        """One batch: claim, send, mark. Returns how many events it claimed (0: nothing
        was pending); a round with failures counts in `_failures`, the backoff."""
        params = {
            "base": self.mapping.attempts_base,
            "max_attempts": self.settings.max_attempts,
            "limit": self.settings.batch_size,
        }
        rows = self._conn.execute(self._claim, params).fetchall()
        if not rows:
            self._failures = 0
            return 0
        native = {index: row[0] for index, row in enumerate(rows)}
        # Claimed ids are the batch's indexes (the table's may be UUIDs); the messages
        # carry the row's own id.
        batch = [
            Claimed(index, topic, key, value or b"", _headers(str(ident)), attempts)
            for index, (ident, topic, key, value, attempts) in enumerate(rows)
        ]
        # A key's event that failed before goes without its key's later events.
        batch = _cut_behind_retries(batch)
        sent_at = time.monotonic()
        result = self._publisher.wait(self._publisher.send(batch))
        metrics.BATCH_SECONDS.observe(time.monotonic() - sent_at)
        self.stats.batches += 1
        if result.broken is not None:
            # Which events the broker took is unknown: none is marked, all go again
            # (a copy is dropped by consumers that dedup by message_id).
            log.warning("producer broken (%s): the batch goes again", result.broken)
            self._publisher.close()
            self._publisher = BatchPublisher(self._config)
            self._failures += 1
            return len(rows)
        acked = [native[i] for i in result.acked]
        with self._conn.transaction():
            if acked:
                self._conn.execute(self._published, {"ids": acked})
            for index, error in result.failed.items():
                if index not in result.transient:
                    self._conn.execute(self._failed, {"id": native[index], "error": error})
        self.stats.published += len(acked)
        self.stats.failed += len(result.failed)
        metrics.PUBLISHED.inc(len(acked))
        metrics.FAILED.inc(len(result.failed))
        if result.failed:
            self._failures += 1
            first = next(iter(result.failed.values()))
            log.warning("%d outbox events failed, first: %s", len(result.failed), first)
            if result.transient:
                # an outage: a producer that lived through one can stay stuck on the
                # restarted broker (timing out what a new one sends at once)
                self._publisher.close()
                self._publisher = BatchPublisher(self._config)
        else:
            self._failures = 0
        return len(rows)

    def close(self) -> None:
        self._publisher.close()
        self._conn.close()

    def __enter__(self) -> TableRelay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def pending(conn: psycopg.Connection[Any], mapping: TableMapping) -> int:
    """The table's unpublished events (their ``SELECT COUNT(*) … WHERE published = FALSE``)."""
    row = conn.execute(mapping.statement("pending")).fetchone()
    return int(row[0]) if row else 0


def status_counts(mapping: TableMapping) -> metrics.Counts:
    """The relay's ``tailrace_outbox_events`` for an application's table: its pending events
    (the table has no other status to count)."""
    return lambda conn: {OutboxStatus.PENDING: pending(conn, mapping)}


def _headers(ident: str) -> list[list[str]]:
    return [[MESSAGE_ID_HEADER, ident], [ID_HEADER, ident]]
