"""Which message ids a consumer group has already handled, over a window (24 h by default).

A consumer asks `seen()` for a batch before handling it and `mark()`s what it handled (or
dead-lettered) before committing offsets: a message redelivered after a crash is then
skipped, and only one that was handled but not yet marked can run twice, which the mark
before commit keeps to a crash between the handler and the mark.

PostgreSQL keeps ids in ``tailrace_stream_dedup`` (the streams migration line's
0001, applied on open), inserted in batches and pruned once expired; Redis keeps one key per id
with an expiry (``SET NX EX``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any, Protocol, Self

import orjson
import psycopg

from ..db import migrate
from ..db.connection import PATIENT, Reconnecting
from ..errors import ConfigurationError
from ..extras import require
from ..settings import redact_url
from .consumer_config import DEFAULT_WINDOW_S

log = logging.getLogger("tailrace.streams.dedup")

# The statements stay here rather than in a queries.sql of the engine's store: they belong
# to the streams package, whose table the engine's migrations merely create.
# Ids travel as one JSON array: psycopg adapts a list element by element in Python, which
# cost a quarter of the consumer's time at 5,000 ids a batch.
_SEEN = """
SELECT message_id FROM tailrace_stream_dedup
WHERE group_id = %(group)s
  AND message_id = ANY(ARRAY(SELECT json_array_elements_text(%(ids)s::json)))
  AND seen_at > now() - make_interval(secs => %(window)s)
"""
# An expired row not pruned yet is taken over, so it starts a new window.
_MARK = """
INSERT INTO tailrace_stream_dedup (group_id, message_id)
SELECT %(group)s, id FROM json_array_elements_text(%(ids)s::json) AS id
ON CONFLICT (group_id, message_id) DO UPDATE SET seen_at = EXCLUDED.seen_at
WHERE tailrace_stream_dedup.seen_at <= now() - make_interval(secs => %(window)s)
"""
_CLAIM = """
INSERT INTO tailrace_stream_dedup (group_id, message_id) VALUES (%(group)s, %(id)s)
ON CONFLICT (group_id, message_id) DO UPDATE SET seen_at = EXCLUDED.seen_at
WHERE tailrace_stream_dedup.seen_at <= now() - make_interval(secs => %(window)s)
RETURNING 1
"""
_FORGET = """
DELETE FROM tailrace_stream_dedup WHERE group_id = %(group)s
  AND message_id = ANY(ARRAY(SELECT json_array_elements_text(%(ids)s::json)))
"""
_PRUNE = """
DELETE FROM tailrace_stream_dedup WHERE ctid = ANY(ARRAY(
  SELECT ctid FROM tailrace_stream_dedup
  WHERE group_id = %(group)s AND seen_at <= now() - make_interval(secs => %(window)s)
  LIMIT %(limit)s))
"""
PRUNE_BATCH = 10_000


def claim(
    conn: psycopg.Connection[Any], group: str, message_id: str, window_s: float = DEFAULT_WINDOW_S
) -> bool:
    """Mark `message_id` in the caller's transaction on `conn`; False if it was marked.

    For a handler whose effects go to the same PostgreSQL: claiming in the transaction of
    those effects makes them exactly-once even when the consumer dies between the handler
    and its own mark (which then finds the id marked already)::

        with conn.transaction():
            if claim(conn, GROUP, message.id):
                conn.execute("INSERT INTO orders ...")
    """
    params = {"group": group, "id": message_id, "window": window_s}
    return conn.execute(_CLAIM, params).fetchone() is not None


class Dedup(Protocol):
    """The dedup store of one consumer group."""

    def seen(self, ids: Sequence[str]) -> set[str]:
        """Those of `ids` marked within the window."""
        ...

    def mark(self, ids: Sequence[str]) -> None:
        """Record `ids` as handled; returns once that is durable. Called from another
        thread than `seen`, possibly at the same time."""
        ...

    def forget(self, ids: Sequence[str]) -> None:
        """Unmark `ids` (a dead message about to be replayed)."""
        ...

    def prune(self) -> int:
        """Delete some expired marks (a batch at most); how many went."""
        ...

    def close(self) -> None: ...


class _Closing:
    """``with store:`` closes it."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class NoDedup(_Closing):
    """Every message is new: for handlers that are idempotent themselves."""

    def seen(self, ids: Sequence[str]) -> set[str]:
        return set()

    def mark(self, ids: Sequence[str]) -> None:
        pass

    def forget(self, ids: Sequence[str]) -> None:
        pass

    def prune(self) -> int:
        return 0

    def close(self) -> None:
        pass


class PostgresDedup(_Closing):
    """Marks in PostgreSQL, one statement per batch. Each thread has a connection of its
    own (a consumer marks on one thread while it looks up on another), which rides out
    restarts and outages of the server (`Reconnecting`, `PATIENT`: the consumer waits for
    its store however long it is away): every statement here is safe to repeat."""

    def __init__(self, url: str, group: str, window_s: float) -> None:
        self.url = url
        self.group = group
        self.window_s = window_s
        migrate(url)  # the streams line's tables (and every other line's)
        self._local = threading.local()
        self._conns: list[Reconnecting] = []
        self._lock = threading.Lock()
        self._stop: threading.Event | None = None

    def stop_on(self, stop: threading.Event) -> None:
        """Once `stop` is set, a wait for the server ends with `StoreClosedError`."""
        with self._lock:
            self._stop = stop
            for conn in self._conns:
                conn.stop = stop

    def _connection(self) -> Reconnecting:
        conn: Reconnecting | None = getattr(self._local, "conn", None)
        if conn is None:
            what = f"dedup store {redact_url(self.url)}"
            conn = Reconnecting(self.url, PATIENT, what, setup=_session)
            self._local.conn = conn
            with self._lock:
                conn.stop = self._stop
                self._conns.append(conn)
        return conn

    def _run(self, sql: str, ids: Sequence[str] = (), limit: int = 0) -> psycopg.Cursor[Any]:
        params = {"group": self.group, "ids": _json(ids), "window": self.window_s, "limit": limit}
        return self._connection().run(lambda conn: conn.execute(sql, params, prepare=True))

    def seen(self, ids: Sequence[str]) -> set[str]:
        if not ids:
            return set()
        return {row[0] for row in self._run(_SEEN, ids)}

    def mark(self, ids: Sequence[str]) -> None:
        # One row may be touched once per statement: repeated ids go in once.
        if ids:
            self._run(_MARK, list(dict.fromkeys(ids)))

    def forget(self, ids: Sequence[str]) -> None:
        if ids:
            self._run(_FORGET, ids)

    def prune(self) -> int:
        return self._run(_PRUNE, limit=PRUNE_BATCH).rowcount

    def close(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()


def _session(conn: psycopg.Connection[Any]) -> None:
    # A mark need not wait for the WAL's fsync: one lost in a crash of PostgreSQL itself can
    # only make a message run again (its offset, committed after the mark, would not come
    # back), never lose one; and the consumer marks often.
    conn.execute("SET synchronous_commit = off")


def _json(ids: Sequence[str]) -> str:
    return orjson.dumps(list(ids)).decode()


# A batch of ids travels to Redis as one JSON argument and is walked by a script there:
# redis-py packing one argument (and parsing one reply) per id in Python cost more than a
# no-op handler. The keys are still one per id with the window's expiry (`SET NX EX`). A
# script that names keys it was not given suits a single Redis, not a cluster (as does the
# rest of this store: one client, one server).
_REDIS_SEEN = """
local ids = cjson.decode(ARGV[2])
local found = {}
for i, id in ipairs(ids) do
  if redis.call('EXISTS', ARGV[1] .. id) == 1 then found[#found + 1] = i end
end
return found
"""
_REDIS_MARK = """
local ids = cjson.decode(ARGV[3])
for _, id in ipairs(ids) do
  redis.call('SET', ARGV[1] .. id, '1', 'NX', 'EX', ARGV[2])
end
return #ids
"""


class RedisDedup(_Closing):
    """Marks as Redis keys ``tailrace:dedup:<group>:<id>`` that expire with the window."""

    def __init__(self, url: str, group: str, window_s: float) -> None:
        redis: Any = require("redis", "redis")
        self.group = group
        self.window_s = max(1, round(window_s))
        self._prefix = f"tailrace:dedup:{group}:"
        self._redis = redis.Redis.from_url(url)
        # EVALSHA, loaded again by redis-py after a server restart (NOSCRIPT)
        self._seen = self._redis.register_script(_REDIS_SEEN)
        self._mark = self._redis.register_script(_REDIS_MARK)

    def seen(self, ids: Sequence[str]) -> set[str]:
        if not ids:
            return set()
        found = self._seen(args=[self._prefix, _json(ids)])
        return {ids[i - 1] for i in found}

    def mark(self, ids: Sequence[str]) -> None:
        if ids:
            self._mark(args=[self._prefix, self.window_s, _json(ids)])

    def forget(self, ids: Sequence[str]) -> None:
        if ids:
            prefix = self._prefix
            self._redis.delete(*[prefix + i for i in ids])

    def prune(self) -> int:
        return 0  # keys expire by themselves

    def close(self) -> None:
        self._redis.close()


def open_dedup(kind: str, url: str | None, group: str, window_s: float) -> Dedup:
    """The store `kind` names (``postgres``, ``redis`` or ``none``) at `url`."""
    if kind == "none":
        return NoDedup()
    if not url:
        raise ConfigurationError(f"the {kind} dedup store needs a URL")
    if kind == "postgres":
        if not url.startswith(("postgresql://", "postgres://")):
            raise ConfigurationError(f"not a PostgreSQL URL: {redact_url(url)}")
        return PostgresDedup(url, group, window_s)
    if kind == "redis":
        return RedisDedup(url, group, window_s)
    raise ConfigurationError(f"unknown dedup store {kind!r} (postgres, redis or none)")
