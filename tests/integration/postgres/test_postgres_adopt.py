"""The PostgreSQL sink on `log` tables it did not create (reference 003's TypeORM table and
variants): written as their column types want, or refused naming the column and the fix."""

from __future__ import annotations

import uuid

import orjson
import psycopg
import pytest

from tailrace.pipeline.sinks.base import SinkError
from tailrace.pipeline.sinks.postgres.sink import PostgresSink

pytestmark = pytest.mark.postgres


def _event(n: int, level: object) -> bytes:
    return orjson.dumps(
        {"level": level, "timestamp": "2025-04-01T18:00:00+02:00", "req": {"id": n}}
    )


def _write(url: str, events: list[bytes]) -> None:
    sink = PostgresSink(url, "log")
    try:
        sink.write(events)
        sink.flush()
    finally:
        sink.close()


def test_a_column_no_field_fills_is_refused_with_the_fix(pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        conn.execute('CREATE TABLE log (id varchar PRIMARY KEY, "version" integer NOT NULL)')
    with pytest.raises(SinkError, match=r'"version" are NOT NULL without a default.*SET DEFAULT'):
        PostgresSink(pg_url, "log")


def test_an_integer_id_is_refused(pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TABLE log (id serial PRIMARY KEY, level varchar)")
    with pytest.raises(SinkError, match="the id column is int4: tailrace writes text or uuid"):
        PostgresSink(pg_url, "log")


def test_numeric_levels_uuid_ids_and_naive_timestamps(pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        conn.execute(
            'CREATE TABLE log (id uuid PRIMARY KEY, level smallint, "timestamp" timestamp,'
            ' "rawData" jsonb, "updatedAt" timestamp NOT NULL)'
        )
    _write(pg_url, [_event(1, 30), _event(2, "error"), _event(3, "loud")])
    _write(pg_url, [_event(1, 30)])  # the same record again: the same uuid, stored once
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT id, level, \"timestamp\"::text, \"rawData\"->'req'->>'id',"
            ' "updatedAt" IS NOT NULL FROM log ORDER BY 4'
        ).fetchall()
    assert [r[1:] for r in rows] == [
        (30, "2025-04-01 16:00:00", "1", True),
        (50, "2025-04-01 16:00:00", "2", True),
        (None, "2025-04-01 16:00:00", "3", True),
    ]
    assert all(isinstance(r[0], uuid.UUID) for r in rows)
