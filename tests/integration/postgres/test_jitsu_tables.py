"""docs/coming-from/failover-reprocessing.md, the tables' rows: tailrace starts on a database
where Jitsu's admin created ``reprocessing_jobs`` and ``reprocessing_workers`` (its DDL as it
runs it, rows in them), keeps every row, and reads and writes Jitsu's ``current_ts``."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from tailrace.api import ApiConfig, create_app
from tailrace.engine.app import App
from tailrace.pipeline.jobs import Counters, ReprocessingStore

pytestmark = pytest.mark.postgres

TOKEN = "jitsu-tables-token-0123456789"

# Jitsu admin's schema (reprocessing_db_schema.go), run the way it runs it
JITSU_DDL = [
    """CREATE TABLE IF NOT EXISTS reprocessing_jobs (
        id VARCHAR(64) PRIMARY KEY,
        config JSONB NOT NULL,
        status VARCHAR(32) NOT NULL,
        created_at TIMESTAMP WITH TIME ZONE NOT NULL,
        started_at TIMESTAMP WITH TIME ZONE,
        completed_at TIMESTAMP WITH TIME ZONE,
        k8s_job_name VARCHAR(255),
        total_files INTEGER DEFAULT 0,
        total_workers INTEGER DEFAULT 0,
        error TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS reprocessing_jobs_created_at_idx "
    "ON reprocessing_jobs(created_at DESC)",
    """CREATE TABLE IF NOT EXISTS reprocessing_workers (
        job_id VARCHAR(64) NOT NULL,
        worker_index INTEGER NOT NULL,
        status VARCHAR(32) NOT NULL,
        started_at TIMESTAMP WITH TIME ZONE,
        updated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
        completed_at TIMESTAMP WITH TIME ZONE,
        current_file TEXT,
        current_line BIGINT DEFAULT 0,
        current_ts TEXT,
        assigned_files INTEGER DEFAULT 0,
        processed_files INTEGER DEFAULT 0,
        total_lines BIGINT DEFAULT 0,
        success_count BIGINT DEFAULT 0,
        error_count BIGINT DEFAULT 0,
        skipped_count BIGINT DEFAULT 0,
        total_bytes BIGINT DEFAULT 0,
        processed_bytes BIGINT DEFAULT 0,
        error TEXT,
        PRIMARY KEY (job_id, worker_index),
        FOREIGN KEY (job_id) REFERENCES reprocessing_jobs(id) ON DELETE CASCADE
    )""",
    "CREATE INDEX IF NOT EXISTS reprocessing_workers_job_id_idx ON reprocessing_workers(job_id)",
    "CREATE INDEX IF NOT EXISTS reprocessing_workers_status_idx "
    "ON reprocessing_workers(job_id, status)",
]

JITSU_ROWS = [
    """INSERT INTO reprocessing_jobs (id, config, status, created_at, started_at, completed_at,
           k8s_job_name, total_files, total_workers)
       VALUES ('jitsu-done', '{"s3_path": "s3://bucket/failover/", "stream_ids": ["s1"],
               "date_from": "0001-01-01T00:00:00Z", "dry_run": false, "batch_size": 100}',
               'completed', now() - interval '2 days', now() - interval '2 days',
               now() - interval '1 day', 'reprocess-jitsu-done', 20, 2)""",
    """INSERT INTO reprocessing_jobs (id, config, status, created_at, total_files)
       VALUES ('jitsu-paused', '{"local_path": "/data/failover"}', 'paused', now(), NULL)""",
    """INSERT INTO reprocessing_workers (job_id, worker_index, status, current_file,
           current_line, current_ts, assigned_files, processed_files, total_lines,
           success_count, error_count, skipped_count, total_bytes, processed_bytes)
       VALUES ('jitsu-done', 0, 'completed', 's3://bucket/failover/f9.ndjson.gz', 500,
               '2024-01-15T10:30:45Z', 10, 10, 50000, 49500, 500, 0, 10485760, 10485760),
              ('jitsu-done', 1, 'completed', NULL, NULL, NULL, 10, 10, 40000, 40000, 0,
               NULL, 9000000, 9000000)""",
]


@pytest.fixture
def jitsu_db(pg_url: str) -> str:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for statement in JITSU_DDL + JITSU_ROWS:
            conn.execute(statement)
    return pg_url


def test_the_service_starts_on_jitsus_tables_and_keeps_every_row(
    jitsu_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TAILRACE_DATA_DIR", str(tmp_path / ".tailrace"))
    monkeypatch.setenv("TAILRACE_API_TOKENS", TOKEN)
    app = create_app(ApiConfig.from_environment(jitsu_db))
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        assert client.get("/readyz").status_code == 200
        listed = client.get("/api/admin/reprocessing/jobs").json()
        assert {j["id"] for j in listed["jobs"]} == {"jitsu-done", "jitsu-paused"}
        done = client.get("/api/admin/reprocessing/jobs/jitsu-done").json()
        assert done["status"] == "completed"
        assert done["config"]["source"] == "s3://bucket/failover/"
        assert done["config"]["stream_ids"] == ["s1"]
        assert done["k8s_job_name"] == "reprocess-jitsu-done"
        assert (done["total_files"], done["total_workers"]) == (20, 2)
        paused = client.get("/api/admin/reprocessing/jobs/jitsu-paused").json()
        assert paused["status"] == "cancelled"  # paused there: resumable here
        assert paused["config"]["source"] == "/data/failover"
        workers = client.get("/api/admin/reprocessing/jobs/jitsu-done/workers").json()["workers"]
        assert [(w["worker_index"], w["success_count"]) for w in workers] == [
            (0, 49500),
            (1, 40000),
        ]
        assert workers[0]["current_timestamp"] == "2024-01-15T10:30:45Z"
        assert workers[1]["current_line"] == 0 and workers[1]["skipped_count"] == 0
    with psycopg.connect(jitsu_db) as conn:
        (jobs,) = conn.execute("SELECT count(*) FROM reprocessing_jobs").fetchone() or (0,)
        (workers_n,) = conn.execute("SELECT count(*) FROM reprocessing_workers").fetchone() or (0,)
    assert (jobs, workers_n) == (2, 2)


def test_jitsus_sql_reads_current_ts_that_tailrace_workers_write(pg_url: str) -> None:
    """On tailrace's own tables (and adopted ones alike), Jitsu's column is current_ts."""
    with App(pg_url) as app:
        app.store.migrate()
    store = ReprocessingStore(pg_url)
    try:
        from tailrace.pipeline.jobs import ReprocessingConfig
        from tailrace.pipeline.sources import SourceFile

        store.job_create(
            "j1", ReprocessingConfig("/x", "null:"), [SourceFile("/x/a.ndjson", 10)], 1
        )
        store.worker_start("j1", 0, "host:1")
        store.worker_progress(
            "j1",
            0,
            current_file="/x/a.ndjson",
            current_line=7,
            current_timestamp="2024-01-15T10:30:45Z",
            assigned_files=1,
            processed_files=0,
            total_bytes=10,
            counters=Counters(7, 7),
        )
    finally:
        store.close()
    with psycopg.connect(pg_url) as conn:
        row = conn.execute(
            "SELECT current_ts, current_line FROM reprocessing_workers WHERE job_id = 'j1'"
        ).fetchone()
        # reference 000's "aggregated progress" query, as written there
        agg = conn.execute(
            """SELECT job_id, COUNT(*) as total_workers,
                      SUM(processed_files) as total_processed_files,
                      SUM(success_count) as total_success, SUM(error_count) as total_errors
               FROM reprocessing_workers WHERE job_id = 'j1' GROUP BY job_id"""
        ).fetchone()
    assert row == ("2024-01-15T10:30:45Z", 7)
    assert agg == ("j1", 1, 0, 7, 0)


def test_a_tailrace_database_of_the_previous_version_gets_current_ts_too(pg_url: str) -> None:
    """A database migrated before the rename keeps its event times under the new name."""
    with App(pg_url) as app:
        app.store.migrate()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        # back to the previous version's column, with a value in it
        conn.execute(
            'ALTER TABLE reprocessing_workers RENAME COLUMN current_ts TO "current_timestamp"'
        )
        conn.execute(
            "INSERT INTO reprocessing_jobs (id, config, status, created_at) "
            "VALUES ('old', '{}', 'completed', now())"
        )
        conn.execute(
            'INSERT INTO reprocessing_workers (job_id, worker_index, status, "current_timestamp") '
            "VALUES ('old', 0, 'completed', '2024-02-01T00:00:00Z')"
        )
        conn.execute(
            "DELETE FROM tailrace_schema_migrations WHERE line = 'reprocessing' AND version = 2"
        )
    with App(pg_url) as app:
        app.store.migrate()
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT current_ts FROM reprocessing_workers").fetchone()
        (applied,) = conn.execute(
            "SELECT count(*) FROM tailrace_schema_migrations"
            " WHERE line = 'reprocessing' AND version = 2"
        ).fetchone() or (0,)
    assert applied == 1
    assert row == ("2024-02-01T00:00:00Z",)
