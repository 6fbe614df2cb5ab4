"""The transactional outbox: events written in the caller's own PostgreSQL transaction.

An event added with `add` exists exactly when the caller's transaction commits: a rolled-back
transaction leaves nothing for the relay (`relay.Relay`, in this package) to publish. The
relay publishes each key's events in the order of their ids (see `relay` for how several
relays keep that order).

    with psycopg.connect(url) as conn, conn.transaction():
        conn.execute("UPDATE orders SET state = 'paid' WHERE id = %s", (order_id,))
        outbox.add(conn, "orders", str(order_id), {"id": order_id, "state": "paid"})

The table comes from the streams migration line (``tailrace db migrate``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import orjson
import psycopg
from psycopg.types.json import Jsonb

from ...db.queries import load_queries
from ...observability import tracing

Q = load_queries(__package__ or "tailrace.streams.outbox")

# Each published message carries its event id, for reconciling a dead relay's batch against
# the topic, and a ``message_id`` (unless the caller set one) that consumers dedup by.
ID_HEADER = "tailrace_outbox_id"

Headers = Mapping[str, str] | Sequence[tuple[str, str]]


class OutboxStatus(Enum):
    """Where an outbox event is in its life."""

    PENDING = "pending"
    """Waiting for a relay (or backing off after a failed attempt until ``available_at``)."""
    PUBLISHING = "publishing"
    """In a relay's batch, sent or about to be, not yet acknowledged (a pending row that a
    batch names: the relay writes no row to claim it)."""
    PUBLISHED = "published"
    """Acknowledged by the broker (and deleted: counted in ``tailrace_outbox_totals``)."""
    DEAD = "dead"
    """Moved aside after its last attempt failed; ``last_error`` says why."""


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """One event to add: `payload` as bytes, text (UTF-8) or anything JSON can hold."""

    topic: str
    key: str | None
    payload: Any
    headers: Headers | None = field(default=None)


def encode_payload(payload: Any) -> bytes:
    if isinstance(payload, bytes | bytearray | memoryview):
        return bytes(payload)
    if isinstance(payload, str):
        return payload.encode()
    return orjson.dumps(payload)


def _headers(headers: Headers | None) -> Jsonb | None:
    pairs: list[tuple[str, Any]] = list(
        headers.items() if isinstance(headers, Mapping) else headers or ()
    )
    if tracing.enabled():
        # the writer's trace, carried to whoever consumes the published event
        carried = tracing.current_carrier()
        pairs = [(k, v) for k, v in pairs if k not in carried] + list(carried.items())
    if not pairs:
        return None
    return Jsonb([[str(name), str(value)] for name, value in pairs])


def add(
    connection: psycopg.Connection[Any],
    topic: str,
    key: str | None,
    payload: Any,
    headers: Headers | None = None,
) -> int:
    """Write one event in `connection`'s current transaction; returns its id.

    On a connection in autocommit mode outside a transaction block, the event is its own
    transaction (committed at once).
    """
    params = {
        "topic": topic,
        "key": key,
        "payload": encode_payload(payload),
        "headers": _headers(headers),
    }
    row = connection.execute(Q["add"], params).fetchone()
    assert row is not None  # INSERT … RETURNING always returns the row
    return int(row[0])


def add_many(connection: psycopg.Connection[Any], events: Iterable[OutboxEvent]) -> int:
    """Write many events in one statement (in `connection`'s transaction); returns how many.

    Ids follow the order of `events`, so a key's events are published in that order.
    """
    topics: list[str] = []
    keys: list[str | None] = []
    payloads: list[bytes] = []
    headers: list[Jsonb | None] = []
    for event in events:
        topics.append(event.topic)
        keys.append(event.key)
        payloads.append(encode_payload(event.payload))
        headers.append(_headers(event.headers))
    if topics:
        params = {"topics": topics, "keys": keys, "payloads": payloads, "headers": headers}
        connection.execute(Q["add_many"], params)
    return len(topics)


def counts(connection: psycopg.Connection[Any]) -> dict[OutboxStatus, int]:
    """How many events are in each status (all four present)."""
    found = dict.fromkeys(OutboxStatus, 0)
    for status, n in connection.execute(Q["counts"]):
        found[OutboxStatus(status)] += int(n)
    return found


def requeue(
    connection: psycopg.Connection[Any],
    *,
    ids: Sequence[int] | None = None,
    keys: Sequence[str] | None = None,
) -> list[int]:
    """Put dead events back to pending, attempts reset: those of `ids`, of `keys`, or (with
    neither) all. Returns their ids. Their keys' held events are published after them."""
    params = {
        "ids": None if ids is None else list(ids),
        "keys": None if keys is None else list(keys),
    }
    return sorted(int(row[0]) for row in connection.execute(Q["requeue"], params))


@dataclass(frozen=True)
class Held:
    """What waits behind dead or backing-off events."""

    dead_keys: int
    held_events: int
    oldest_unpublished_s: float | None


def held(connection: psycopg.Connection[Any]) -> Held:
    row = connection.execute(Q["held"]).fetchone()
    assert row is not None
    age = None if row[2] is None else round(float(row[2]), 3)
    return Held(int(row[0]), int(row[1]), age)
