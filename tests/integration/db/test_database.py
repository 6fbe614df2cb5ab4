"""`tailrace.db.Database` on both dialects: transactions that commit or roll back as a whole,
and a PostgreSQL connection that the server cut being replaced."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest

from tailrace.db import ConnectionPolicy, Database, Dialect


def _table(db: Database) -> None:
    db.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)")


def test_a_percent_sign_means_the_same_in_both(database_url: str) -> None:
    with Database(database_url) as db:
        found = db.execute(db.dialect.sql("SELECT 'a%%b' = %(p)s"), {"p": "a%b"})
    assert found == [(True,)] or found == [(1,)]


def test_a_transaction_commits_or_rolls_back_as_a_whole(database_url: str) -> None:
    with Database(database_url) as db:
        _table(db)
        insert = db.dialect.sql("INSERT INTO t VALUES (%(k)s, %(v)s)")

        def two(conn: object, fail: bool) -> None:
            conn.execute(insert, {"k": "a", "v": 1})  # type: ignore[attr-defined]
            if fail:
                raise RuntimeError("after the first insert")
            conn.execute(insert, {"k": "b", "v": 2})  # type: ignore[attr-defined]

        with pytest.raises(RuntimeError):
            db.transaction(lambda c: two(c, fail=True))
        assert db.execute("SELECT count(*) FROM t") == [(0,)]
        db.transaction(lambda c: two(c, fail=False))
        with pytest.raises(RuntimeError), db.begin() as conn:
            conn.execute(insert, {"k": "c", "v": 3})
            raise RuntimeError("inside the block")
        assert db.execute("SELECT k, v FROM t ORDER BY k") == [("a", 1), ("b", 2)]


def test_times_round_trip_in_each_dialect(database_url: str) -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=UTC)
    with Database(database_url) as db:
        kind = "timestamptz" if db.dialect is Dialect.POSTGRES else "REAL"
        db.execute(f"CREATE TABLE at_times (at {kind})")
        db.execute(
            db.dialect.sql("INSERT INTO at_times VALUES (%(at)s)"),
            {"at": db.dialect.timestamp(when)},
        )
        ((stored,),) = db.execute("SELECT at FROM at_times")
    assert db.dialect.datetime(stored) == when


def _cut(db: Database, pg_url: str) -> None:
    pid = db.run(lambda c: c.info.backend_pid)
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_a_cut_connection_is_replaced(pg_url: str) -> None:
    # the default policy runs the operation again on a new connection
    with Database(pg_url) as db:
        first = db.run(lambda c: c.info.backend_pid)
        _cut(db, pg_url)
        assert db.execute("SELECT 1") == [(1,)]
        assert db.run(lambda c: c.info.backend_pid) != first
    # without retries, the operation that finds it cut fails and the next one reconnects
    with Database(pg_url, ConnectionPolicy(retry_for_s=0.0)) as db:
        _cut(db, pg_url)
        with pytest.raises(psycopg.OperationalError):
            db.execute("SELECT 1")
        assert db.execute("SELECT 1") == [(1,)]
