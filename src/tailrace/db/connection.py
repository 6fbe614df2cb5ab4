"""Connections to PostgreSQL that outlive the server's restarts, outages and freezes.

A `ConnectionPolicy` (`policy.py`) says how long to wait for the server: the connect
timeout, a deadline per operation (enforced here, on the client: a frozen server enforces
nothing, not even its own statement_timeout), and how long to keep reconnecting before an
operation gives up.

`Reconnecting` runs operations on one connection and, when the connection breaks under one,
reconnects with exponential backoff and jitter and runs it again; it logs an outage when it
starts, at most every `LOG_EVERY_S` while it lasts, and when it ends.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg

from ..errors import StoreClosedError
from .policy import DEFAULT, PATIENT, PROMPT, ConnectionPolicy

__all__ = [
    "DEFAULT",
    "PATIENT",
    "PROMPT",
    "SCHEMA_LOCK",
    "ConnectionPolicy",
    "Reconnecting",
    "connect",
    "connection_lost",
    "deadline",
]

log = logging.getLogger("tailrace.store.postgres")
T = TypeVar("T")

LOG_EVERY_S = 30.0
BACKOFF_FIRST_S = 0.05
BACKOFF_MAX_S = 2.0


def connect(url: str, policy: ConnectionPolicy) -> psycopg.Connection[Any]:
    conn = psycopg.connect(url, autocommit=True, **policy.connect_kwargs(url))
    if policy.statement_timeout_s is not None:
        # milliseconds; a SET rather than `options`, which the URL may already use
        conn.execute(f"SET statement_timeout = {int(policy.statement_timeout_s * 1000)}")
    return conn


def connection_lost(exc: BaseException, conn: psycopg.Connection[Any] | None) -> bool:
    """Did ``exc`` come from a connection that is gone or could not be made (rather than
    from the statement, or from a server that refuses us for good: bad database, auth)?"""
    if not isinstance(exc, psycopg.Error):
        return False
    state = exc.sqlstate or ""
    if state.startswith(("08", "57P")):  # connection failure; server shutting down, starting
        return True
    if conn is None:  # connecting failed: refused, timed out, reset (no SQLSTATE)
        return not state
    return conn.closed or conn.broken


# -- the client-side deadline ---------------------------------------------------------------


class _Watchdog:
    """One thread that cuts the socket of a connection whose operation ran past its deadline:
    the blocked call then fails at once with OperationalError and the connection is broken."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int]] = []
        self._live: dict[int, psycopg.Connection[Any]] = {}
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None

    @contextmanager
    def guard(self, conn: psycopg.Connection[Any], seconds: float | None) -> Iterator[None]:
        if seconds is None:
            yield
            return
        key = next(self._ids)
        with self._cond:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._watch, name="tailrace-db-watchdog", daemon=True
                )
                self._thread.start()
            self._live[key] = conn
            heapq.heappush(self._heap, (time.monotonic() + seconds, key))
            self._cond.notify()
        try:
            yield
        finally:
            with self._cond:  # after this, the watchdog no longer touches the connection
                self._live.pop(key, None)

    def _watch(self) -> None:
        with self._cond:
            while True:
                while self._heap and self._heap[0][1] not in self._live:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                due, key = self._heap[0]
                wait = due - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
                conn = self._live.pop(key)
                _cut(conn)


def _cut(conn: psycopg.Connection[Any]) -> None:
    try:
        fd = conn.pgconn.socket
    except psycopg.Error:
        return  # already closed
    try:
        with socket.socket(fileno=os.dup(fd)) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    log.warning("database operation timed out; connection cut")


_watchdog = _Watchdog()
deadline = _watchdog.guard


# -- reconnecting ---------------------------------------------------------------------------


class _Outage:
    """Logs one outage: its start, a reminder at most every LOG_EVERY_S, its end."""

    def __init__(self, what: str, error: BaseException) -> None:
        self.what = what
        self.started = time.monotonic()
        self.attempts = 0
        self._next_log = self.started + LOG_EVERY_S
        log.warning(
            "database connection lost, reconnecting",
            extra={"connection": what, "error": _first_line(error)},
        )

    def failed(self, error: BaseException) -> None:
        self.attempts += 1
        now = time.monotonic()
        if now >= self._next_log:
            self._next_log = now + LOG_EVERY_S
            log.warning(
                "database still unreachable, reconnecting",
                extra={
                    "connection": self.what,
                    "seconds": round(now - self.started, 1),
                    "attempts": self.attempts,
                    "error": _first_line(error),
                },
            )

    def ended(self) -> None:
        log.info(
            "database reachable again",
            extra={
                "connection": self.what,
                "seconds": round(time.monotonic() - self.started, 1),
                "attempts": self.attempts,
            },
        )


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class Reconnecting:
    """One connection, opened on first use, and operations run on it with reconnects.

    ``setup`` runs on every new connection (session settings). ``disrupted_at`` is when an
    operation last found the connection gone or waited past ``slow_s``: the reaper holds off
    for a while after it, so that live workers renew their leases before anyone reaps them.
    ``stop``, once set, ends the wait for a lost connection with `StoreClosedError` (a worker
    asked to stop during an outage stops, rather than wait for the server).
    """

    def __init__(
        self,
        url: str,
        policy: ConnectionPolicy,
        what: str,
        setup: Callable[[psycopg.Connection[Any]], None] | None = None,
        slow_s: float = 5.0,
        stop: threading.Event | None = None,
    ) -> None:
        self.url = url
        self.policy = policy
        self.what = what
        self._setup = setup
        self._slow_s = slow_s
        self._conn: psycopg.Connection[Any] | None = None
        self.disrupted_at: float | None = None
        self.closed = False
        self.stop = stop

    def connection(self) -> psycopg.Connection[Any]:
        """The open connection (connecting now if there is none, without retrying)."""
        if self.closed:
            raise StoreClosedError("the store was closed")
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            if conn is not None:
                conn.close()
            self._conn = None
            conn = connect(self.url, self.policy)
            try:
                if self._setup is not None:
                    with deadline(conn, self.policy.op_timeout_s):
                        self._setup(conn)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return conn

    def run(self, op: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run ``op``; if the connection is lost (or cannot be made), reconnect and run it
        again, for as long as the policy allows. ``op`` must be safe to repeat: its first
        run may have committed before the connection dropped."""
        policy = self.policy
        started = time.monotonic()
        delay = BACKOFF_FIRST_S
        outage: _Outage | None = None
        while True:
            conn: psycopg.Connection[Any] | None = None
            try:
                conn = self.connection()
                if policy.op_timeout_s is None:
                    result = op(conn)
                else:
                    with deadline(conn, policy.op_timeout_s):
                        result = op(conn)
            except psycopg.Error as exc:
                if not connection_lost(exc, conn):
                    raise
                if self._conn is not None:  # broken, or the server is going away: start over
                    self._conn.close()
                    self._conn = None
                self.disrupted_at = time.monotonic()
                waited = time.monotonic() - started
                if policy.retry_for_s is not None and waited >= policy.retry_for_s:
                    raise
                if outage is not None:
                    outage.failed(exc)
                elif policy.log_outages:
                    outage = _Outage(self.what, exc)
                pause = delay * random.uniform(0.5, 1.0)
                if policy.retry_for_s is not None:
                    pause = min(pause, max(0.0, policy.retry_for_s - waited))
                if self.stop is None:
                    time.sleep(pause)
                elif self.stop.wait(pause):
                    raise StoreClosedError("stopped while the database was unreachable") from exc
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            if outage is not None:
                outage.ended()
            if time.monotonic() - started > self._slow_s:
                self.disrupted_at = time.monotonic()
            return result

    def close(self) -> None:
        self.closed = True
        if self._conn is not None:
            self._conn.close()
            self._conn = None


# A transaction lock on (class, current schema): each schema holds a tailrace of its own, so
# installations that share a database never wait on each other's migrations or claims.
SCHEMA_LOCK = "SELECT pg_advisory_xact_lock(%s, hashtext(current_schema()))"
