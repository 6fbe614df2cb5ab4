"""Sessions ended at logout: their ids, kept in the service's database until the session
would have expired anyway, so that every server process and a restarted service refuse
them too.

Checking a session is on the path of every request the UI makes, so it is a lookup in this
process's copy of the list, reloaded from the database at most once per `refresh_s` (by the
request that finds it stale, on a thread). A logout is seen at once by the process that
served it and within `refresh_s` by the others. Without a database URL (tests of the
authenticator alone) the list lives in memory only. The table is the ``api`` migration
line's, applied when the service starts.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from ..db import ConnectionPolicy, Database

log = logging.getLogger("tailrace.api")

TABLE = "tailrace_api_revoked_sessions"
REFRESH_S = 1.0
# A lost connection fails the operation that found it (the request answers an error) and is
# opened again by the next one.
_POLICY = ConnectionPolicy(retry_for_s=0.0)


class Revocations:
    def __init__(self, database_url: str | None, refresh_s: float = REFRESH_S) -> None:
        self.database_url = database_url
        self.refresh_s = refresh_s
        self._ids: dict[str, float] = {}  # session id -> when the session expires (epoch s)
        self._loaded = float("-inf")
        self._db: Database | None = None
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
            if self._db is not None:
                self._db.close()
                self._db = None

    def _run(self, sql: str, *params: Any, fetch: bool = True) -> list[tuple[Any, ...]]:
        if self._db is None:  # opened on first use: most authenticators never need it
            assert self.database_url is not None
            self._db = Database(self.database_url, _POLICY, "revoked sessions")
        if self._db.postgres:
            sql = sql.replace("?", "%s")
        found = self._db.execute(sql, params)
        return list(found) if fetch and isinstance(found, list) else []
