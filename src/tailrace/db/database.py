"""`Database`: one connection to the application's database, of either dialect, for a store
whose threads take turns on it. On PostgreSQL it rides out restarts and outages for as long
as its `ConnectionPolicy` says (`Reconnecting`); on SQLite it is the file's connection."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from . import sqlite
from .dialect import Dialect
from .migrations import migrate_postgres, migrate_sqlite, pending_postgres, pending_sqlite
from .policy import DEFAULT, ConnectionPolicy

if TYPE_CHECKING:
    import psycopg

    from .connection import Reconnecting

T = TypeVar("T")


class Database:
    """``setup`` runs on every new PostgreSQL connection (session settings);
    ``synchronous`` is SQLite's (NORMAL for frequent writes that are safe to repeat)."""

    def __init__(
        self,
        url: str,
        policy: ConnectionPolicy = DEFAULT,
        what: str = "database",
        setup: Callable[[psycopg.Connection[Any]], None] | None = None,
        synchronous: str = "FULL",
    ) -> None:
        self.url = url
        self.dialect = Dialect.of(url)
        self._lock = threading.Lock()
        self._pg: Reconnecting | None = None
        self._lite: Any = None
        if self.dialect is Dialect.POSTGRES:
            from .connection import Reconnecting  # here: SQLite users need no psycopg

            self._pg = Reconnecting(url, policy, what, setup)
        else:
            self._lite = sqlite.connect(sqlite.path_from_url(url), synchronous)

    @property
    def postgres(self) -> bool:
        return self._pg is not None

    def connect(self) -> None:
        """Connect now (once, without retrying): an unreachable database is an error here."""
        if self._pg is not None:
            with self._lock:
                self._pg.connection()

    def run(self, op: Callable[[Any], T]) -> T:
        """``op(connection)``, alone on the connection. On PostgreSQL (autocommit) it runs
        again on a new connection if the old one was lost: ``op`` must be safe to repeat."""
        with self._lock:
            if self._pg is not None:
                return self._pg.run(op)
            return op(self._lite)

    def transaction(self, op: Callable[[Any], T]) -> T:
        """``op(connection)`` in one transaction (SQLite's takes the write lock at once)."""

        def within(conn: Any) -> T:
            if self._pg is not None:
                with conn.transaction():
                    return op(conn)
            with sqlite.immediate(conn):
                return op(conn)

        return self.run(within)

    @contextmanager
    def begin(self) -> Iterator[Any]:
        """A transaction around the caller's block, alone on the connection. Unlike
        `transaction` it is not run again if the connection is lost (a block cannot be):
        the error reaches the caller, and the next operation reconnects."""
        with self._lock:
            if self._pg is not None:
                pg = self._pg.connection()
                with pg.transaction():
                    yield pg
                return
            with sqlite.immediate(self._lite) as lite:
                yield lite

    def execute(self, sql: str, params: Any = ()) -> Any:
        """One statement: its rows if it returns any, else the rows it changed."""

        def op(conn: Any) -> Any:
            cursor = conn.execute(sql, params)
            return cursor.fetchall() if cursor.description else cursor.rowcount

        return self.run(op)

    def migrate(self) -> list[str]:
        """Apply every line's missing migrations; the labels applied (``engine/0001_init``)."""
        if self._pg is not None:
            return self.run(migrate_postgres)
        return self.transaction(migrate_sqlite)

    def migrations_pending(self) -> list[str]:
        return self.run(pending_postgres if self._pg is not None else pending_sqlite)

    def close(self) -> None:
        with self._lock:
            if self._pg is not None:
                self._pg.close()
            else:
                self._lite.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def migrate(url: str, policy: ConnectionPolicy = DEFAULT) -> list[str]:
    """Bring the database at ``url`` up to date (every line); the labels applied."""
    with Database(url, policy, "migrations") as db:
        return db.migrate()
