"""Sessions ended at logout: their ids, kept in the service's database until the session
would have expired anyway, so that every server process and a restarted service refuse
them too.

Checking a session is on the path of every request the UI makes, so it is a lookup in this
process's copy of the list, reloaded from the database at most once per `refresh_s` (by the
request that finds it stale, on a thread). A logout is seen at once by the process that
served it and within `refresh_s` by the others. Without a database URL (tests of the
authenticator alone) the list lives in memory only.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from ..engine.store.postgres.connection import SCHEMA_LOCK

log = logging.getLogger("tailrace.api")

TABLE = "tailrace_api_revoked_sessions"
_CREATE = f"""CREATE TABLE IF NOT EXISTS {TABLE} (
    session_id TEXT PRIMARY KEY,
    expires_at DOUBLE PRECISION NOT NULL
)"""
_CREATE_LOCK = 0x7A11_5E55  # serialises server processes creating the table at once
REFRESH_S = 1.0


class Revocations:
    def __init__(self, database_url: str | None, refresh_s: float = REFRESH_S) -> None:
        self.database_url = database_url
        self.refresh_s = refresh_s
        self._ids: dict[str, float] = {}  # session id -> when the session expires (epoch s)
        self._loaded = float("-inf")
        self._conn: Any = None
        self._postgres = bool(database_url) and str(database_url).startswith(
            ("postgresql://", "postgres://")
        )
        self._lock = threading.Lock()

    def revoked(self, session_id: str) -> bool:
        return session_id in self._ids

    def stale(self) -> bool:
        return self.database_url is not None and time.monotonic() - self._loaded > self.refresh_s

    def refresh(self) -> None:
        """Reload the list from the database (blocking: call it on a thread)."""
        if self.database_url is None:
            return
        with self._lock:
            if time.monotonic() - self._loaded <= self.refresh_s:
                return  # another request reloaded it meanwhile
            rows = self._run(
                f"SELECT session_id, expires_at FROM {TABLE} WHERE expires_at > ?", time.time()
            )
            self._ids = {str(sid): float(exp) for sid, exp in rows}
            self._loaded = time.monotonic()

    def revoke(self, session_id: str, expires_at: float) -> None:
        """Refuse this session from now on, in every process (blocking)."""
        self._ids[session_id] = expires_at
        if self.database_url is None:
            return
        with self._lock:
            self._run(
                f"INSERT INTO {TABLE} (session_id, expires_at) VALUES (?, ?) "
                "ON CONFLICT (session_id) DO NOTHING",
                session_id,
                expires_at,
            )
            # the ended sessions that have expired since need no entry any more
            self._run(f"DELETE FROM {TABLE} WHERE expires_at <= ?", time.time(), fetch=False)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _run(self, sql: str, *params: Any, fetch: bool = True) -> list[tuple[Any, ...]]:
        conn = self._connection()
        if self._postgres:
            rows = conn.execute(sql.replace("?", "%s"), params)
            return list(rows.fetchall()) if fetch and rows.description else []
        cursor = conn.execute(sql, params)
        found = list(cursor.fetchall()) if fetch else []
        conn.commit()
        return found

    def _connection(self) -> Any:
        """This object's own connection, opened (and the table made) on first use, and
        again after the server dropped it: the operation that found it broken failed."""
        conn = self._conn
        if conn is not None and self._postgres and (conn.closed or conn.broken):
            conn.close()
            conn = self._conn = None
        if conn is not None:
            return conn
        assert self.database_url is not None
        if self._postgres:
            import psycopg

            conn = psycopg.connect(self.database_url, autocommit=True, connect_timeout=5)
            with conn.transaction():
                conn.execute(SCHEMA_LOCK, (_CREATE_LOCK,))
                conn.execute(_CREATE)
        else:
            import sqlite3

            from ..engine.store.sqlite.store import path_from_url

            # used from request threads, one at a time under self._lock
            conn = sqlite3.connect(
                path_from_url(self.database_url), timeout=10, check_same_thread=False
            )
            conn.execute(_CREATE)
            conn.commit()
        self._conn = conn
        return conn
