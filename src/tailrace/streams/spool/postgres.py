"""A spool in PostgreSQL's ``tailrace_spool`` table (streams migration 0002), a row a message."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import psycopg

from ...db import migrate
from ...db.connection import ConnectionPolicy, Reconnecting
from ...settings import redact_url
from . import SpoolBusy, Spooled, SpoolError, decode, encode

LOCK_CLASS = 0x5B001  # first key of the session advisory lock that owns a spool

_APPEND = (
    "INSERT INTO tailrace_spool (spool, seq, record)"
    " SELECT %(spool)s, * FROM unnest(%(seqs)s::bigint[], %(records)s::bytea[])"
    " ON CONFLICT (spool, seq) DO NOTHING"
)
_HEAD = "SELECT seq, record FROM tailrace_spool WHERE spool = %s ORDER BY seq LIMIT %s"
_REMOVE = "DELETE FROM tailrace_spool WHERE spool = %s AND seq = ANY(%s::bigint[])"


# The sender waits this long for a server that restarts or is away, then gets SpoolError
# (its messages were not stored); the drain retries on its own. Not forever: `send` would
# block, holding the producer's lock.
POLICY = ConnectionPolicy(retry_for_s=10.0)


class PostgresSpool:
    def __init__(self, url: str, name: str) -> None:
        migrate(url)  # the streams line's tables (and every other line's)
        self.name = name
        self._url = url
        # Every new connection takes the spool's lock again (it went with the old session),
        # or raises SpoolBusy: someone took the spool over meanwhile.
        self._db = Reconnecting(url, POLICY, f"spool {name}", setup=self._own)
        # The sender and the drain use the spool from two threads: one reconnects at a time
        # (two new sessions would race for the lock, and the loser would call it busy).
        self._lock = threading.Lock()
        self._db.connection()

    def _own(self, conn: psycopg.Connection[Any]) -> None:
        """Take the spool's session advisory lock (it dies with the session, so with the
        owner), or raise SpoolBusy."""
        row = conn.execute(
            "SELECT pg_try_advisory_lock(%s, hashtext(%s))", (LOCK_CLASS, self.name)
        ).fetchone()
        if not (row and row[0]):
            raise SpoolBusy(redact_url(self._url), self.name)

    def _run(self, sql: str, params: Any) -> list[Any]:
        # Every statement is safe to run again after a lost connection (an append that
        # committed before it dropped conflicts with itself and is skipped).
        def run(conn: psycopg.Connection[Any]) -> list[Any]:
            cursor = conn.execute(sql, params)
            return cursor.fetchall() if cursor.description else []

        try:
            with self._lock:
                return self._db.run(run)
        except psycopg.Error as exc:
            raise SpoolError(f"postgres spool {self.name}: {exc}") from exc

    def append(self, entries: Sequence[Spooled]) -> None:
        if entries:
            params = {
                "spool": self.name,
                "seqs": [e.seq for e in entries],
                "records": [encode(e) for e in entries],
            }
            self._run(_APPEND, params)

    def head(self, limit: int) -> list[Spooled]:
        return [decode(seq, record) for seq, record in self._run(_HEAD, (self.name, limit))]

    def remove(self, entries: Sequence[Spooled]) -> None:
        if entries:
            self._run(_REMOVE, (self.name, [e.seq for e in entries]))

    def last_seq(self) -> int | None:
        rows = self._run("SELECT max(seq) FROM tailrace_spool WHERE spool = %s", (self.name,))
        return None if rows[0][0] is None else int(rows[0][0])

    def count(self) -> int:
        rows = self._run("SELECT count(*) FROM tailrace_spool WHERE spool = %s", (self.name,))
        return int(rows[0][0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
