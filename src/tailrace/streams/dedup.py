"""Which message ids a consumer group has already taken, over a window (24 h by default).

A consumer `take()`s a batch before handling it: one call records every id with the
position (partition, offset) of the message that carries it and returns the ids recorded
already, which are duplicates and skipped. At each checkpoint it records, per partition,
the offset below which every message is done (`done()`), then commits the offsets. A
message taken again at the position that took it is a redelivery: a duplicate below the
done offset, run again at or above it (it may have been taken and never handled). So a
kill repeats only the messages handled since the last checkpoint, and one store operation
per id (an insert) is all the dedup costs.

PostgreSQL keeps ids in ``tailrace_stream_dedup`` and the done offsets in
``tailrace_stream_dedup_done`` (the streams migration line's 0001 and 0005, applied on open),
inserted in batches and pruned once expired; Redis keeps one key per id with an expiry
(``SET NX EX``) and a hash of done offsets per group and topic.
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
from .consumer.config import DEFAULT_WINDOW_S

log = logging.getLogger("tailrace.streams.dedup")

# The statements stay here rather than in a queries.sql of the engine's store: they belong
# to the streams package, whose table the engine's migrations merely create.
# Ids travel in one JSON document: psycopg adapts a list element by element in Python,
# which cost a quarter of the consumer's time at 5,000 ids a batch.
#
# The insert finds the duplicates itself (through the primary key's unique check), so the
# plan never depends on the table's statistics: a look-up by `= ANY(...)` planned on a new,
# empty table scanned it whole for every batch until the table was first analysed. A
# conflicting row is taken over (and returned as new) when it expired, or when it was
# taken at this very position and that offset is not done: a redelivery to run again.
# `effected` survives a redelivery, so a handler's `claim()` still finds its effect.
# Rows go in id order: two takes of the same ids (consumers of a group while partitions
# move) then wait on each other in one order, never in a deadlock.
_TAKE = """
INSERT INTO tailrace_stream_dedup AS d (group_id, message_id, partition_no, offset_no, effected)
SELECT %(group)s, r->>0, (r->>1)::integer, (r->>2)::bigint, false
FROM jsonb_array_elements(%(rows)s::jsonb) AS r
ORDER BY r->>0
ON CONFLICT (group_id, message_id) DO UPDATE
SET seen_at = EXCLUDED.seen_at, partition_no = EXCLUDED.partition_no,
    offset_no = EXCLUDED.offset_no,
    effected = d.effected AND d.seen_at > now() - make_interval(secs => %(window)s)
WHERE d.seen_at <= now() - make_interval(secs => %(window)s)
   OR (d.partition_no = EXCLUDED.partition_no AND d.offset_no = EXCLUDED.offset_no
       AND d.offset_no >= COALESCE((
         SELECT k.next_offset FROM tailrace_stream_dedup_done AS k
         WHERE k.group_id = %(group)s AND k.topic = %(topic)s AND k.partition_no = d.partition_no
       ), 0))
RETURNING message_id
"""
# A late write (of a consumer that lost the partition) never moves a done offset back.
_DONE = """
INSERT INTO tailrace_stream_dedup_done AS k (group_id, topic, partition_no, next_offset)
SELECT %(group)s, %(topic)s, (p->>0)::integer, (p->>1)::bigint
FROM jsonb_array_elements(%(points)s::jsonb) AS p
ON CONFLICT (group_id, topic, partition_no) DO UPDATE
SET next_offset = GREATEST(k.next_offset, EXCLUDED.next_offset)
"""
# A handler's claim takes over a row the consumer took (its effect not committed yet) or
# one that expired.
_CLAIM = """
INSERT INTO tailrace_stream_dedup (group_id, message_id) VALUES (%(group)s, %(id)s)
ON CONFLICT (group_id, message_id) DO UPDATE SET seen_at = EXCLUDED.seen_at, effected = true
WHERE NOT tailrace_stream_dedup.effected
   OR tailrace_stream_dedup.seen_at <= now() - make_interval(secs => %(window)s)
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


# (message id, partition, offset) of the messages of a batch, each id once
Taken = Sequence[tuple[str, int, int]]


class Dedup(Protocol):
    """The dedup store of one consumer group."""

    def take(self, topic: str, taken: Taken) -> set[str]:
        """Record each id as taken by the message at its position; the ids that are
        duplicates: recorded within the window at another position, or at this one below
        its partition's done offset. Called from another thread than `done`."""
        ...

    def done(self, topic: str, points: dict[int, int]) -> None:
        """Every message of partition p below ``points[p]`` is done (handled or
        dead-lettered); returns once that is durable."""
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

    def take(self, topic: str, taken: Taken) -> set[str]:
        return set()

    def done(self, topic: str, points: dict[int, int]) -> None:
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

    def _run(self, sql: str, **params: object) -> psycopg.Cursor[Any]:
        params.update(group=self.group, window=self.window_s)
        return self._connection().run(lambda conn: conn.execute(sql, params, prepare=True))

    def take(self, topic: str, taken: Taken) -> set[str]:
        if not taken:
            return set()
        rows = orjson.dumps(taken).decode()
        fresh = {row[0] for row in self._run(_TAKE, topic=topic, rows=rows)}
        return {mid for mid, _, _ in taken if mid not in fresh}

    def done(self, topic: str, points: dict[int, int]) -> None:
        if points:
            self._run(_DONE, topic=topic, points=orjson.dumps(list(points.items())).decode())

    def forget(self, ids: Sequence[str]) -> None:
        if ids:
            self._run(_FORGET, ids=_json(ids))

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


# A batch travels to Redis as one JSON argument and is walked by a script there: redis-py
# packing one argument (and parsing one reply) per id in Python cost more than a no-op
# handler. The keys are still one per id with the window's expiry (`SET NX EX`), holding
# the position that took the id; the done offsets are a hash per group and topic. A script
# that names keys it was not given suits a single Redis, not a cluster (as does the rest
# of this store: one client, one server).
_REDIS_TAKE = """
local taken = cjson.decode(ARGV[3])
local duplicates = {}
for i, t in ipairs(taken) do
  local key = ARGV[1] .. t[1]
  local position = t[2] .. ':' .. t[3]
  if not redis.call('SET', key, position, 'NX', 'EX', ARGV[2]) then
    local again = redis.call('GET', key) == position
    if again then
      again = t[3] >= tonumber(redis.call('HGET', ARGV[4], tostring(t[2])) or '0')
    end
    if not again then duplicates[#duplicates + 1] = i end
  end
end
return duplicates
"""
_REDIS_DONE = """
local points = cjson.decode(ARGV[2])
for _, p in ipairs(points) do
  local field = tostring(p[1])
  if p[2] > tonumber(redis.call('HGET', ARGV[1], field) or '-1') then
    redis.call('HSET', ARGV[1], field, p[2])
  end
end
return #points
"""


class RedisDedup(_Closing):
    """Marks as Redis keys ``tailrace:dedup:<group>:<id>`` that expire with the window, and
    done offsets in ``tailrace:dedup-done:<group>:<topic>``."""

    def __init__(self, url: str, group: str, window_s: float) -> None:
        redis: Any = require("redis", "redis")
        self.group = group
        self.window_s = max(1, round(window_s))
        self._prefix = f"tailrace:dedup:{group}:"
        self._redis = redis.Redis.from_url(url)
        # EVALSHA, loaded again by redis-py after a server restart (NOSCRIPT)
        self._take = self._redis.register_script(_REDIS_TAKE)
        self._done = self._redis.register_script(_REDIS_DONE)

    def _done_key(self, topic: str) -> str:
        return f"tailrace:dedup-done:{self.group}:{topic}"

    def take(self, topic: str, taken: Taken) -> set[str]:
        if not taken:
            return set()
        args: list[str | int | bytes] = [
            self._prefix,
            self.window_s,
            orjson.dumps(taken),
            self._done_key(topic),
        ]
        return {taken[i - 1][0] for i in self._take(args=args)}

    def done(self, topic: str, points: dict[int, int]) -> None:
        if points:
            self._done(args=[self._done_key(topic), orjson.dumps(list(points.items()))])

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
