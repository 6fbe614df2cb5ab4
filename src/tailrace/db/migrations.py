"""Migrations as lines, one per package that owns tables (as River's migration lines).

Each line keeps numbered files in ``<package>/migrations/<dialect>/NNNN_name.sql``;
`migrate` applies every line's missing files, line after line in `LINES` order, in one
transaction, and records each in ``tailrace_schema_migrations`` under (line, version).

Databases made before the lines kept one numbering for everything, in
``tailrace_migrations`` (version, name). The first migrate after an upgrade records those
under the lines they now belong to (`NUMBERED`). The old table stays, kept up to date with
what it had numbers for: the previous version's processes, still starting during a rolling
upgrade, find nothing to do.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

from ..errors import TailraceError
from .dialect import Dialect
from .sqlite import statements

if TYPE_CHECKING:
    import psycopg

TABLE = "tailrace_schema_migrations"
NUMBERED_TABLE = "tailrace_migrations"  # before the lines
_LOCK = 0x7A11_7ACE  # the numbered layout's lock too: old and new never migrate at once


class MigrationError(TailraceError):
    """The database's recorded migrations do not fit the ones this version knows."""


@dataclass(frozen=True)
class Line:
    """The migrations of one package: ``name`` in the bookkeeping; ``folder`` (under
    ``src/tailrace/``) holds one folder of numbered files per dialect. A path rather than a
    package name: reading the files must not import the package (the API's pulls in FastAPI)."""

    name: str
    folder: str


# The order migrate applies them in; a line may build on the lines before it.
LINES = (
    Line("engine", "engine/store/migrations"),
    Line("reprocessing", "pipeline/jobs/migrations"),
    Line("streams", "streams/migrations"),
    Line("objects", "objects/migrations"),
    Line("api", "api/migrations"),
)

# The numbered layout's migrations (through 0008 on PostgreSQL, 0004 on SQLite) and where
# each now lives: {dialect: {old version: (old name, line, version)}}.
NUMBERED: dict[Dialect, dict[int, tuple[str, str, int]]] = {
    Dialect.POSTGRES: {
        1: ("init", "engine", 1),
        2: ("reprocessing", "reprocessing", 1),
        3: ("stream_dedup", "streams", 1),
        4: ("outbox", "streams", 2),
        5: ("outbox_held_keys", "streams", 3),
        6: ("current_ts", "reprocessing", 2),
        7: ("operator", "engine", 2),
        8: ("outbox_relay_buckets", "streams", 4),
    },
    Dialect.SQLITE: {
        1: ("init", "engine", 1),
        2: ("reprocessing", "reprocessing", 1),
        3: ("current_ts", "reprocessing", 2),
        4: ("operator", "engine", 2),
    },
}

_FILE = re.compile(r"(\d{4})_(\w+)\.sql")


@dataclass(frozen=True)
class Migration:
    line: str
    version: int
    name: str
    sql: str

    @property
    def label(self) -> str:
        return f"{self.line}/{self.version:04d}_{self.name}"


def line_migrations(line: Line, dialect: Dialect) -> list[Migration]:
    """A line's migrations for one dialect, in order (none where it has no folder)."""
    folder = resources.files("tailrace").joinpath(*line.folder.split("/"), dialect.value)
    if not folder.is_dir():
        return []
    found = []
    for entry in folder.iterdir():
        match = _FILE.fullmatch(entry.name)
        if match:
            sql = entry.read_text(encoding="utf-8")
            found.append(Migration(line.name, int(match[1]), match[2], sql))
    return sorted(found, key=lambda m: m.version)


def all_migrations(dialect: Dialect) -> list[Migration]:
    return [m for line in LINES for m in line_migrations(line, dialect)]


def from_numbered(dialect: Dialect, rows: Iterable[tuple[int, str]]) -> set[tuple[str, int]]:
    """The (line, version) pairs that the numbered layout's applied rows stand for."""
    known = NUMBERED[dialect]
    done = set()
    for version, name in rows:
        place = known.get(version)
        if place is None or place[0] != name:
            raise MigrationError(
                f"{NUMBERED_TABLE} records {version:04d}_{name}, which this version does not "
                "know: was the database migrated by a newer or a development version?"
            )
        done.add((place[1], place[2]))
    return done


# -- PostgreSQL -----------------------------------------------------------------------------


def _pg_exists(conn: psycopg.Connection[Any], table: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
    return bool(row and row[0])


def _pg_applied(conn: psycopg.Connection[Any]) -> set[tuple[str, int]] | None:
    if _pg_exists(conn, TABLE):
        return {(r[0], r[1]) for r in conn.execute(f"SELECT line, version FROM {TABLE}")}
    if _pg_exists(conn, NUMBERED_TABLE):
        rows = conn.execute(f"SELECT version, name FROM {NUMBERED_TABLE}").fetchall()
        return from_numbered(Dialect.POSTGRES, rows)
    return None


def migrate_postgres(conn: psycopg.Connection[Any]) -> list[str]:
    """Apply what is missing, in one transaction on ``conn`` (autocommit); the labels applied."""
    from .connection import SCHEMA_LOCK  # here: SQLite users need no psycopg

    if _pg_exists(conn, TABLE) and not pending_postgres(conn):
        # Up to date: no lock. Every store takes this path when it opens, and a process
        # paused while holding the lock (SIGSTOP, a debugger) would hold back every other.
        return []
    done: list[str] = []
    with conn.transaction():
        # serialises processes that all start at once and all try to migrate
        conn.execute(SCHEMA_LOCK, (_LOCK,))
        applied = _pg_applied(conn)
        if not _pg_exists(conn, TABLE):
            conn.execute(
                f"CREATE TABLE {TABLE} (line text NOT NULL, version integer NOT NULL,"
                " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(),"
                " PRIMARY KEY (line, version))"
            )
            if applied:  # the numbered layout's, carried over with their times
                known = NUMBERED[Dialect.POSTGRES]
                for version, name, at in conn.execute(
                    f"SELECT version, name, applied_at FROM {NUMBERED_TABLE}"
                ).fetchall():
                    _, line, new = known[version]
                    conn.execute(
                        f"INSERT INTO {TABLE} VALUES (%s, %s, %s, %s)",
                        (line, new, _new_name(Dialect.POSTGRES, line, new, name), at),
                    )
        applied = applied or set()
        numbered = _pg_exists(conn, NUMBERED_TABLE)
        for m in all_migrations(Dialect.POSTGRES):
            if (m.line, m.version) not in applied:
                conn.execute(m.sql.encode())
                conn.execute(
                    f"INSERT INTO {TABLE} (line, version, name) VALUES (%s, %s, %s)",
                    (m.line, m.version, m.name),
                )
                old = _numbered_as(Dialect.POSTGRES, m)
                if numbered and old is not None:
                    conn.execute(
                        f"INSERT INTO {NUMBERED_TABLE} (version, name) VALUES (%s, %s)"
                        " ON CONFLICT DO NOTHING",
                        old,
                    )
                done.append(m.label)
    return done


def _numbered_as(dialect: Dialect, m: Migration) -> tuple[int, str] | None:
    """What the numbered layout called ``m``, if it had it. Applying it records it there
    too, so that the previous version's processes, still starting during a rolling upgrade
    of a database that was behind, do not apply it a second time."""
    for version, (name, line, new) in NUMBERED[dialect].items():
        if (line, new) == (m.line, m.version):
            return version, name
    return None


def _new_name(dialect: Dialect, line: str, version: int, old: str) -> str:
    """The file's name in its line (the numbered layout named a few differently)."""
    for m in line_migrations(next(x for x in LINES if x.name == line), dialect):
        if m.version == version:
            return m.name
    return old


def pending_postgres(conn: psycopg.Connection[Any]) -> list[str]:
    """The labels `migrate_postgres` would apply (reads only)."""
    applied = _pg_applied(conn) or set()
    return [m.label for m in all_migrations(Dialect.POSTGRES) if (m.line, m.version) not in applied]


# -- SQLite ---------------------------------------------------------------------------------


def _lite_exists(conn: sqlite3.Connection, table: str) -> bool:
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,))
    return row.fetchone() is not None


def _lite_applied(conn: sqlite3.Connection) -> set[tuple[str, int]] | None:
    if _lite_exists(conn, TABLE):
        return {(r[0], r[1]) for r in conn.execute(f"SELECT line, version FROM {TABLE}")}
    if _lite_exists(conn, NUMBERED_TABLE):
        rows = conn.execute(f"SELECT version, name FROM {NUMBERED_TABLE}").fetchall()
        return from_numbered(Dialect.SQLITE, rows)
    return None


def migrate_sqlite(conn: sqlite3.Connection) -> list[str]:
    """Apply what is missing, inside the caller's write transaction; the labels applied."""
    done: list[str] = []
    applied = _lite_applied(conn)
    if not _lite_exists(conn, TABLE):
        conn.execute(
            f"CREATE TABLE {TABLE} (line TEXT NOT NULL, version INTEGER NOT NULL,"
            " name TEXT NOT NULL, applied_at REAL NOT NULL, PRIMARY KEY (line, version))"
        )
        if applied:
            known = NUMBERED[Dialect.SQLITE]
            for version, name, at in conn.execute(
                f"SELECT version, name, applied_at FROM {NUMBERED_TABLE}"
            ).fetchall():
                _, line, new = known[version]
                conn.execute(
                    f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?)",
                    (line, new, _new_name(Dialect.SQLITE, line, new, name), at),
                )
    applied = applied or set()
    numbered = _lite_exists(conn, NUMBERED_TABLE)
    for m in all_migrations(Dialect.SQLITE):
        if (m.line, m.version) in applied:
            continue
        for statement in statements(m.sql):
            conn.execute(statement)
        now = time.time()
        conn.execute(f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?)", (m.line, m.version, m.name, now))
        old = _numbered_as(Dialect.SQLITE, m)
        if numbered and old is not None:
            conn.execute(f"INSERT OR IGNORE INTO {NUMBERED_TABLE} VALUES (?, ?, ?)", (*old, now))
        done.append(m.label)
    return done


def pending_sqlite(conn: sqlite3.Connection) -> list[str]:
    applied = _lite_applied(conn) or set()
    return [m.label for m in all_migrations(Dialect.SQLITE) if (m.line, m.version) not in applied]
