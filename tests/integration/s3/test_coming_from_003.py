"""Coming from reference 003 (the S3 → database ingestor): its CronJob's environment, its
TypeORM `log` table and its file order work with `tailrace ingest` as they are (the rows of
docs/coming-from/s3-ingestor.md). Real PostgreSQL, moto's S3, the real CLI."""

from __future__ import annotations

import gzip
import os
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import orjson
import psycopg
import pytest

from tailrace.pipeline.jobs import ReprocessingStore
from tailrace.pipeline.jobs.model import IngestStatus
from tests.e2e.support import CLI, REPO_ROOT
from tests.services import PG_BASE_URL

# What TypeORM's `synchronize` creates for reference 003's `Log` entity.
TYPEORM_LOG = """
CREATE TABLE "log" (
    "id" character varying NOT NULL,
    "timestamp" TIMESTAMP NOT NULL,
    "level" character varying NOT NULL,
    "method" character varying,
    "url" character varying,
    "query" jsonb,
    "headers" jsonb,
    "context" character varying,
    "message" character varying,
    "authUserId" integer,
    "pid" integer,
    "hostname" character varying,
    "remoteAddress" character varying,
    "remotePort" integer,
    "processingTimeMs" integer,
    "cacheHit" boolean,
    "documentCount" integer,
    "lastUpdated" TIMESTAMP,
    "params" jsonb,
    "rawData" jsonb,
    "createdAt" TIMESTAMP NOT NULL DEFAULT now(),
    "updatedAt" TIMESTAMP NOT NULL DEFAULT now(),
    CONSTRAINT "PK_log_id" PRIMARY KEY ("id")
)"""

T0 = datetime(2025, 4, 1, 18, 0, tzinfo=UTC)


def record(n: int, at: datetime) -> dict[str, Any]:
    """A log record as reference 003's README shows one."""
    return {
        "level": 40 if n % 5 == 0 else 30,
        "time": int(at.timestamp() * 1000),
        "timestamp": at.isoformat().replace("+00:00", "Z"),
        "pid": 46,
        "hostname": "server-1",
        "req": {
            "id": n,
            "method": "GET",
            "url": f"/api/endpoint/{n}",
            "query": {"page": n},
            "headers": {"host": "api.example.com"},
            "remoteAddress": "::ffff:10.0.236.240",
            "remotePort": 19250,
        },
        "context": "ApiController",
        "message": "Processing GET request",
        "authUserId": 1102 + n,
        "processingTimeMs": 100,
        "cacheHit": n % 2 == 0,
        "documentCount": 2,
        "lastUpdated": "2024-01-01T02:00:00.000+02:00",
    }


def put_logs(s3: Any, bucket: str, key: str, ids: range, start: datetime) -> None:
    records = [record(n, start + timedelta(seconds=i)) for i, n in enumerate(ids)]
    s3.put_object(Bucket=bucket, Key=key, Body=gzip.compress(orjson.dumps(records)))


def schema_of(pg_url: str) -> str:
    match = re.search(r"search_path%3D(\w+)|search_path=(\w+)", unquote(pg_url))
    assert match is not None, pg_url
    return match.group(1) or match.group(2)


def reference_env(pg_url: str, moto: str, **extra: str) -> dict[str, str]:
    """The CronJob's environment of reference 003 (its variables only), pointed at this
    test's schema through libpq's PGOPTIONS."""
    base = psycopg.conninfo.conninfo_to_dict(PG_BASE_URL)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "TAILRACE_", "DB_")) and k != "DATABASE_URL"
    }
    env.update(
        AWS_REGION="eu-west-3",
        AWS_ENDPOINT=moto,
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        AWS_CONFIG_FILE="/nonexistent",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
        DB_HOST=str(base.get("host", "127.0.0.1")),
        DB_PORT=str(base.get("port", "5432")),
        DB_USERNAME=str(base.get("user", "postgres")),
        DB_PASSWORD=str(base.get("password", "")),
        DB_DATABASE=str(base.get("dbname", "test")),
        PGOPTIONS=f"-csearch_path={schema_of(pg_url)}",
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO_ROOT / "src"), str(REPO_ROOT)) if p),
        **extra,
    )
    return env


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=180
    )


@pytest.fixture
def typeorm_log(pg_url: str) -> str:
    with psycopg.connect(pg_url) as conn:
        conn.execute(TYPEORM_LOG)
    return pg_url


def test_its_cronjob_environment_and_typeorm_table_work_as_they_are(
    s3: Any, bucket: str, typeorm_log: str, moto_endpoint: str, tmp_path: Path
) -> None:
    put_logs(s3, bucket, "api/2025-04-01-18.json.gz", range(0, 300), T0)
    put_logs(s3, bucket, "api/2025-04-01-19.json.gz", range(300, 500), T0 + timedelta(hours=1))
    with psycopg.connect(typeorm_log) as conn:  # a record the old ingestor stored already
        conn.execute(
            'INSERT INTO log (id, "timestamp", level, "rawData", "createdAt", "updatedAt")'
            " VALUES ('0', '2025-04-01 18:00', '30', '{}', '2025-04-01', '2025-04-01')"
        )
    env = reference_env(typeorm_log, moto_endpoint)

    result = run(["ingest", f"s3://{bucket}/api/", "--json"], env, tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    report = orjson.loads(result.stdout)
    assert report["files"] == {"total": 2, "completed": 2}
    assert (report["sent"], report["skipped"], report["balanced"]) == (499, 1, True)
    with psycopg.connect(typeorm_log) as conn:
        rows = conn.execute(
            'SELECT id, "timestamp", level, "authUserId", "remoteAddress", "cacheHit",'
            ' "lastUpdated", query, "rawData", "createdAt", "updatedAt" FROM log'
            " ORDER BY id::int"
        ).fetchall()
        # the record of files is in this database: no SQLite file beside the run
        files = conn.execute(
            "SELECT key, status FROM tailrace_processed_files ORDER BY key"
        ).fetchall()
    assert len(rows) == 500
    assert rows[0][8] == {} and rows[0][9] == datetime(2025, 4, 1)  # stored once, untouched
    fifth = rows[5]
    assert fifth[0] == "5" and fifth[1] == (T0 + timedelta(seconds=5)).replace(tzinfo=None)
    assert fifth[2] == "40"  # the level as the input has it: a number, not "warn"
    assert fifth[3:6] == (1107, "::ffff:10.0.236.240", False)
    assert fifth[6] == datetime(2024, 1, 1, 0, 0)  # +02:00 stored in UTC
    assert fifth[7] == {"page": 5} and fifth[8]["req"]["id"] == 5
    assert fifth[9] is not None and fifth[10] is not None  # updatedAt kept, filled
    assert {r[2] for r in rows} == {"30", "40"}
    assert files == [
        ("api/2025-04-01-18.json.gz", "COMPLETED"),
        ("api/2025-04-01-19.json.gz", "COMPLETED"),
    ]
    assert not (tmp_path / ".tailrace" / "tailrace.db").exists()


def test_files_go_in_the_order_of_their_logs_not_of_their_upload(
    s3: Any, bucket: str, pg_url: str, moto_endpoint: str, tmp_path: Path
) -> None:
    # Uploaded (LastModified) and named in the reverse of their logs' order.
    put_logs(s3, bucket, "in/c.json.gz", range(200, 300), T0 + timedelta(hours=2))
    put_logs(s3, bucket, "in/b.json.gz", range(100, 200), T0 + timedelta(hours=1))
    put_logs(s3, bucket, "in/a.json.gz", range(0, 100), T0)
    s3.put_object(  # NDJSON with pino's `time` only (epoch milliseconds)
        Bucket=bucket,
        Key="in/0-oldest.ndjson",
        Body=orjson.dumps({"time": int((T0 - timedelta(days=1)).timestamp() * 1000), "msg": "x"}),
    )
    env = reference_env(pg_url, moto_endpoint)

    result = run(["ingest", f"s3://{bucket}/in/", "--json"], env, tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    [job_id] = orjson.loads(result.stdout)["jobs"]
    with ReprocessingStore(pg_url) as store:
        order = [Path(f.url).name for f in store.files(job_id)]
    assert order == ["0-oldest.ndjson", "a.json.gz", "b.json.gz", "c.json.gz"]


def test_db_variables_without_a_database_name_say_which_one_is_used(
    s3: Any, bucket: str, pg_url: str, moto_endpoint: str, tmp_path: Path
) -> None:
    put_logs(s3, bucket, "x/a.json.gz", range(3), T0)
    env = reference_env(pg_url, moto_endpoint)
    del env["DB_DATABASE"]
    env["DB_USERNAME"] = "postgres"

    result = run(["ingest", f"s3://{bucket}/x/"], env, tmp_path)

    assert "DB_DATABASE (or DB_NAME) is not set: using database 'postgres'" in result.stderr


def test_a_sink_that_names_postgresql_keeps_the_record_there(
    s3: Any, bucket: str, pg_url: str, moto_endpoint: str, tmp_path: Path
) -> None:
    put_logs(s3, bucket, "y/a.json.gz", range(10), T0)
    env = reference_env(pg_url, moto_endpoint)
    for name in [n for n in env if n.startswith("DB_")]:
        del env[name]

    result = run(["ingest", f"s3://{bucket}/y/", "--sink", pg_url], env, tmp_path)

    assert result.returncode == 0, result.stderr
    assert "record of files:" in result.stderr and "the sink's database" in result.stderr
    with ReprocessingStore(pg_url) as store:
        assert [r.status for r in store.processed_files()] == [IngestStatus.COMPLETED]
    assert not (tmp_path / ".tailrace" / "tailrace.db").exists()
