"""Durable spools for messages the broker cannot take now (`producer.BreakerProducer`).

A spool holds messages by sequence number and gives them back lowest first: a message that
failed in the producer's queue after later ones were already spooled still drains before
them. `append` returns only once its messages are durable (as durable as the store is: a
Redis without AOF ``fsync`` can lose its last second in a crash); `remove` is called only for
messages the broker acknowledged.

Spools by URL (`open_spool`): ``redis://host:port/db`` (a sorted set), ``postgresql://…``
(the ``tailrace_spool`` table), ``file:///directory`` (an fsynced log), and
``redis+list://host:port/db?topic=T`` (a list of JSON bodies shared with the Kafka workers'
fallback queue: `redis_list`).

A spool has one owner at a time, from open to close: two processes draining one spool would
send its messages twice and out of order. The owner holds a lock that dies with it: `flock`
on the disk spool's lock file, a session advisory lock in PostgreSQL, a lease key renewed
every few seconds in Redis (a dead owner's lease expires after `REDIS_LEASE_S`). Opening a
spool someone holds raises `SpoolBusy`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import msgspec

from ...errors import ConfigurationError, TailraceError

Headers = list[tuple[str, bytes | None]]


class SpoolError(TailraceError):
    """A spool could not store or give back messages."""


class SpoolBusy(SpoolError):
    """Another live process owns the spool."""

    def __init__(self, where: str, name: str) -> None:
        super().__init__(
            f"spool {name!r} ({where}) is owned by another live process: each producer needs "
            f"a spool name of its own, and `tailrace spool drain {name}` waits for its owner "
            "to exit"
        )


@dataclass(frozen=True, slots=True)
class Spooled:
    """One message waiting in a spool."""

    seq: int
    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers


_Record = tuple[str, bytes | None, bytes | None, Headers]
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_Record)


def encode(entry: Spooled) -> bytes:
    """The stored form of `entry`, without its sequence number."""
    return _encoder.encode((entry.topic, entry.key, entry.value, entry.headers))


def decode(seq: int, record: bytes) -> Spooled:
    topic, key, value, headers = _decoder.decode(record)
    return Spooled(seq, topic, key, value, [(name, value) for name, value in headers])


class Spool(Protocol):
    """Where messages wait while the circuit is open."""

    name: str

    def append(self, entries: Sequence[Spooled]) -> None:
        """Store `entries`; durable when this returns."""

    def head(self, limit: int) -> list[Spooled]:
        """Up to `limit` waiting messages, lowest sequence number first."""

    def remove(self, entries: Sequence[Spooled]) -> None:
        """Forget `entries` (the broker acknowledged them)."""

    def last_seq(self) -> int | None:
        """The highest sequence number waiting, if any."""

    def count(self) -> int:
        """How many messages wait."""

    def close(self) -> None: ...


def open_spool(url: str, name: str = "default") -> Spool:
    """The spool `url` names; `name` separates the spools of several producers in one store."""
    if url.startswith(("redis+list://", "rediss+list://")):
        from .redis_list import RedisListSpool

        return RedisListSpool(url, name)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from .redis import RedisSpool

        return RedisSpool(url, name)
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresSpool

        return PostgresSpool(url, name)
    if url.startswith("file://"):
        from .disk import DiskSpool

        return DiskSpool(url.removeprefix("file://"), name)
    raise ConfigurationError(
        f"unknown spool {url!r}: redis://, redis+list://, postgresql:// or file:///dir"
    )
