"""A database as the numbered layout (commit f6b5018) left it: its migrations, applied the
way its stores applied them, and the tables it made on first use, each with rows in."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import psycopg

from tailrace.db.sqlite import path_from_url, statements

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "schema_f6b5018"


def numbered(dialect: str, upto: int | None = None) -> list[tuple[int, str, str]]:
    found = []
    for path in sorted((FIXTURES / dialect).glob("[0-9][0-9][0-9][0-9]_*.sql")):
        version, name = path.stem.split("_", 1)
        if upto is None or int(version) <= upto:
            found.append((int(version), name, path.read_text()))
    return found


def first_use(dialect: str) -> str:
    return (FIXTURES / dialect / "first_use.sql").read_text()


# One row in every table, as the previous version's code would have written it.
POSTGRES_ROWS = """
INSERT INTO tailrace_jobs (queue, task, args, priority, state, attempts, dedup_key, errors)
VALUES ('mail', 'send', '{"to": "a@b"}', 1, 'dead', 3, 'k1', '["boom"]');
INSERT INTO tailrace_queues (name, paused, capacity) VALUES ('mail', true, 10);
INSERT INTO tailrace_cron_ticks VALUES ('nightly', '2026-01-01T02:00:00Z', 1);
INSERT INTO reprocessing_jobs (id, config, status, created_at, total_files, total_bytes)
VALUES ('r1', '{"workers": 2}', 'running', '2026-01-01T00:00:00Z', 2, 100);
INSERT INTO reprocessing_workers (job_id, worker_index, status, current_ts, success_count)
VALUES ('r1', 0, 'running', '2026-01-01T00:00:01Z', 42);
INSERT INTO reprocessing_files (job_id, file_index, url, size, line, "offset", skip_reasons)
VALUES ('r1', 0, 's3://b/k.ndjson.gz', 100, 7, 64, '{"json": 1}');
INSERT INTO tailrace_processed_files (bucket, key, version, size, created_at, updated_at)
VALUES ('b', 'k', 'etag', 100, '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z');
INSERT INTO tailrace_stream_dedup (group_id, message_id) VALUES ('g', 'm1');
INSERT INTO tailrace_outbox (topic, key, payload, headers) VALUES ('t', 'k', '\\x01', '{}');
INSERT INTO tailrace_outbox_batches (owner_pid, owner_started, events, buckets)
VALUES (1, '2026-01-01T00:00:00Z', '{1}', '{3}');
INSERT INTO tailrace_outbox_offsets VALUES ('t', 0, 5);
UPDATE tailrace_outbox_totals SET published = 9;
INSERT INTO tailrace_spool VALUES ('s', 1, '\\x02');
INSERT INTO tailrace_workers (id, host, pid, priorities, concurrency)
VALUES ('w1', 'h', 1, '{0,1}', 4);
INSERT INTO tailrace_queue_history
VALUES ('2026-01-01T00:00:00Z', 'mail', 1, 0, 0, 1, 0, 1, 0.5, 0.9);
INSERT INTO tailrace_uploads (id, bucket, prefix, status, created_at, updated_at)
VALUES ('u1', 'b', 'chunks/u1/', 'uploading', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z');
INSERT INTO tailrace_api_revoked_sessions VALUES ('s1', 1893456000)
"""

SQLITE_ROWS = """
INSERT INTO tailrace_jobs (queue, task, args, priority, state, attempts, run_at, sort_at,
                           created_at, dedup_key, errors)
VALUES ('mail', 'send', '{"to": "a@b"}', 1, 'dead', 3, 1.5, 1.5, 1.0, 'k1', '["boom"]');
INSERT INTO tailrace_queues (name, paused, capacity, updated_at) VALUES ('mail', 1, 10, 1.0);
INSERT INTO tailrace_cron_ticks VALUES ('nightly', 1767232800.0, 1);
INSERT INTO reprocessing_jobs (id, config, status, created_at, total_files, total_bytes)
VALUES ('r1', '{"workers": 2}', 'running', 1.0, 2, 100);
INSERT INTO reprocessing_workers (job_id, worker_index, status, updated_at, current_ts,
                                  success_count)
VALUES ('r1', 0, 'running', 2.0, '2026-01-01T00:00:01Z', 42);
INSERT INTO reprocessing_files (job_id, file_index, url, size, line, "offset", skip_reasons)
VALUES ('r1', 0, 's3://b/k.ndjson.gz', 100, 7, 64, '{"json": 1}');
INSERT INTO tailrace_processed_files (bucket, key, version, size, created_at, updated_at)
VALUES ('b', 'k', 'etag', 100, 1.0, 1.0);
INSERT INTO tailrace_workers (id, host, pid, priorities, concurrency, started_at,
                              heartbeat_at)
VALUES ('w1', 'h', 1, '[0, 1]', 4, 1.0, 2.0);
INSERT INTO tailrace_queue_history VALUES (60.0, 'mail', 1, 0, 0, 1, 0, 1, 0.5, 0.9);
INSERT INTO tailrace_uploads (id, bucket, prefix, status, created_at, updated_at)
VALUES ('u1', 'b', 'chunks/u1/', 'uploading', 1.0, 1.0);
INSERT INTO tailrace_api_revoked_sessions VALUES ('s1', 1893456000)
"""


def build_postgres(url: str, upto: int | None = None) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        # what the previous PostgresStore.migrate did, file by file
        with conn.transaction():
            conn.execute(
                "CREATE TABLE IF NOT EXISTS tailrace_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            for version, name, sql in numbered("postgres", upto):
                conn.execute(sql.encode())
                conn.execute(
                    "INSERT INTO tailrace_migrations (version, name, applied_at)"
                    " VALUES (%s, %s, '2025-06-01T00:00:00Z'::timestamptz + %s * interval '1 day')",
                    (version, name, version),
                )
        if upto is not None:
            return
        with conn.transaction():
            conn.execute(first_use("postgres").encode())
        with conn.transaction():
            conn.execute(POSTGRES_ROWS.encode())


def build_sqlite(url: str, upto: int | None = None) -> None:
    conn = sqlite3.connect(path_from_url(url), isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS tailrace_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
        )
        for version, name, sql in numbered("sqlite", upto):
            for statement in statements(sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO tailrace_migrations VALUES (?, ?, ?)",
                (version, name, 1_750_000_000.0 + version),
            )
        conn.execute("COMMIT")
        if upto is not None:
            return
        conn.executescript(first_use("sqlite"))
        conn.executescript(SQLITE_ROWS)
    finally:
        conn.close()


def build(url: str, upto: int | None = None) -> None:
    """The previous layout's database: every migration, the first-use tables and a row in
    every table; or, with ``upto``, only the migrations through that number (a database
    that was behind)."""
    (build_postgres if url.startswith("postgresql") else build_sqlite)(url, upto)


def _lite(url: str) -> sqlite3.Connection:
    return sqlite3.connect(path_from_url(url))


def tables(url: str) -> list[str]:
    if url.startswith("postgresql"):
        with psycopg.connect(url) as conn:
            rows = conn.execute(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = current_schema() ORDER BY 1"
            ).fetchall()
    else:
        lite = _lite(url)
        try:
            rows = lite.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1"
            ).fetchall()
        finally:
            lite.close()
    return [r[0] for r in rows]


def contents(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a fixed order."""
    names = tables(url)
    if url.startswith("postgresql"):
        with psycopg.connect(url) as conn:
            return {t: conn.execute(f'SELECT * FROM "{t}" ORDER BY 1, 2').fetchall() for t in names}
    lite = _lite(url)
    try:
        return {t: lite.execute(f'SELECT * FROM "{t}" ORDER BY 1, 2').fetchall() for t in names}
    finally:
        lite.close()


# The migrations' own bookkeeping: the numbered layout's table stays beside the lines'.
BOOKKEEPING = ("tailrace_migrations", "tailrace_schema_migrations")
_NOT_BOOKKEEPING = f"NOT IN {BOOKKEEPING!r}"


def schema(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """What the migrations decide: columns, indexes, constraints, functions and triggers
    (the bookkeeping tables aside)."""
    if url.startswith("postgresql"):
        with psycopg.connect(url) as conn:
            here = "= current_schema()"
            return {
                "columns": conn.execute(
                    "SELECT table_name, ordinal_position, column_name, data_type, is_nullable,"
                    " column_default FROM information_schema.columns"
                    f" WHERE table_schema {here} AND table_name {_NOT_BOOKKEEPING}"
                    " ORDER BY 1, 2"
                ).fetchall(),
                "indexes": conn.execute(
                    "SELECT indexname, replace(indexdef, current_schema() || '.', '')"
                    f" FROM pg_indexes WHERE schemaname {here}"
                    f" AND tablename {_NOT_BOOKKEEPING} ORDER BY 1"
                ).fetchall(),
                "constraints": conn.execute(
                    "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)"
                    " FROM pg_constraint WHERE connamespace = current_schema()::regnamespace"
                    f" AND conrelid::regclass::text {_NOT_BOOKKEEPING} ORDER BY 1, 2"
                ).fetchall(),
                "functions": conn.execute(
                    "SELECT proname, prosrc FROM pg_proc"
                    " WHERE pronamespace = current_schema()::regnamespace ORDER BY 1"
                ).fetchall(),
                "triggers": conn.execute(
                    "SELECT tgname, replace(pg_get_triggerdef(t.oid), current_schema() || '.', '')"
                    " FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
                    " WHERE c.relnamespace = current_schema()::regnamespace"
                    " AND NOT t.tgisinternal ORDER BY 1"
                ).fetchall(),
                "options": conn.execute(
                    "SELECT relname, reloptions FROM pg_class"
                    " WHERE relnamespace = current_schema()::regnamespace"
                    f" AND reloptions IS NOT NULL AND relname {_NOT_BOOKKEEPING} ORDER BY 1"
                ).fetchall(),
            }
    lite = _lite(url)
    try:
        return {
            "objects": lite.execute(
                "SELECT type, name, tbl_name, sql FROM sqlite_master"
                f" WHERE tbl_name {_NOT_BOOKKEEPING} ORDER BY 1, 2"
            ).fetchall()
        }
    finally:
        lite.close()
