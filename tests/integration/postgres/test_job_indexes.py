"""The indexes an enqueued job enters on PostgreSQL: each costs every enqueue a few µs of the
server's time (bench/engine/RESULTS.md), so a waiting job is only in those a statement reads."""

from __future__ import annotations

import psycopg
import pytest

from tailrace import App

pytestmark = pytest.mark.postgres


def test_a_waiting_job_enters_only_the_indexes_the_claim_and_the_dashboard_read(
    pg_url: str,
) -> None:
    with App(pg_url) as app:
        app.store.migrate()
        job_id = app.enqueue("t", {"x": 1}, queue="q")
    with psycopg.connect(pg_url) as conn:
        indexes = conn.execute(
            "SELECT c.relname, pg_get_expr(i.indpred, i.indrelid) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = 'tailrace_jobs'::regclass"
        ).fetchall()
        entered = set()
        for name, predicate in indexes:
            where = f"id = %s AND ({predicate or 'true'})"
            query = f"SELECT EXISTS (SELECT 1 FROM tailrace_jobs WHERE {where})"
            held = conn.execute(query.encode(), (job_id,)).fetchone()
            if held and held[0]:
                entered.add(name)
    # the primary key; the claim's (sort_at, id) order; the dashboard's list by state
    assert entered == {"tailrace_jobs_pkey", "tailrace_jobs_claim", "tailrace_jobs_state_id"}
