"""docs/coming-from/reprocessing-worker.md: reference 001's worker contract. Its "Local
Testing" recipe, run as written (JOB_ID, WORKER_INDEX, DATABASE_URL, KAFKA_BOOTSTRAP_SERVERS,
files.json and config.json made by hand; the mount point moved by
TAILRACE_WORKER_CONFIG_DIR), with a real worker process, S3 (moto), Kafka (Tansu) and
PostgreSQL; what the topic holds is read back and compared with the input."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections import Counter
from pathlib import Path

import boto3
import psycopg
import pytest

from tailrace.pipeline.samples import write_samples
from tests.e2e.reprocess_support import expected_events
from tests.e2e.support import CLI
from tests.kafka_broker import TansuBroker
from tests.s3_server import MotoS3

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def _worker_env(pg_url: str, broker: TansuBroker, config: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAILRACE_", "AWS_"))}
    env.update(
        {
            "JOB_ID": "test-job-123",
            "WORKER_INDEX": "0",
            "DATABASE_URL": pg_url,
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "TAILRACE_WORKER_CONFIG_DIR": str(config),
            **extra,
        }
    )
    return env


def test_the_local_testing_recipe_runs_as_written(
    kafka_broker: TansuBroker, moto_storage: MotoS3, pg_url: str, tmp_path: Path
) -> None:
    (sample,) = write_samples(tmp_path / "logs", files=1, lines=600, seed=9137, gzip_share=0)
    bucket = f"bucket-{uuid.uuid4().hex[:8]}"
    moto_storage.create_bucket(bucket)
    aws = {
        "AWS_ACCESS_KEY_ID": "tailrace-test-key",
        "AWS_SECRET_ACCESS_KEY": "tailrace-test-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto_storage.endpoint,
    }
    s3 = boto3.client(
        "s3",
        endpoint_url=moto_storage.endpoint,
        aws_access_key_id=aws["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=aws["AWS_SECRET_ACCESS_KEY"],
        region_name="us-east-1",
    )
    s3.put_object(Bucket=bucket, Key="file.ndjson", Body=sample.path.read_bytes())
    # the recipe: mkdir -p /tmp/config/files /tmp/config/job; echo ... > files.json, config.json
    config = tmp_path / "config"
    (config / "files").mkdir(parents=True)
    (config / "job").mkdir(parents=True)
    files = [{"path": f"s3://{bucket}/file.ndjson", "size": sample.size}]
    (config / "files" / "files.json").write_text(json.dumps(files))
    (config / "job" / "config.json").write_text('{"batch_size":100}')

    result = subprocess.run(
        [*CLI, "worker"],
        env=_worker_env(pg_url, kafka_broker, config, **aws),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr

    want = expected_events([sample.path])
    # KAFKA_DESTINATIONS_TOPIC unset: reference 001's default topic (shared by the session)
    got = Counter(
        r.value for r in kafka_broker.consume_all("bulker-destinations", timeout=30, quiet=1.0)
    )
    assert all(got[event] >= count for event, count in want.items())
    with psycopg.connect(pg_url) as conn:
        job = conn.execute(
            "SELECT status, total_files FROM reprocessing_jobs WHERE id = 'test-job-123'"
        ).fetchone()
        worker = conn.execute(
            "SELECT status, success_count, processed_files FROM reprocessing_workers "
            "WHERE job_id = 'test-job-123' AND worker_index = 0"
        ).fetchone()
    assert job == ("completed", 1)
    assert worker == ("completed", sum(want.values()), 1)


def test_workers_started_together_share_one_job_from_the_mounted_files(
    kafka_broker: TansuBroker, pg_url: str, tmp_path: Path
) -> None:
    samples = write_samples(tmp_path / "logs", files=4, lines=500, seed=41)
    topic = f"destinations-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic)
    config = tmp_path / "config"
    (config / "files").mkdir(parents=True)
    (config / "job").mkdir(parents=True)
    listing = [{"path": str(s.path), "size": s.size} for s in samples]
    (config / "files" / "files.json").write_text(json.dumps(listing))
    (config / "files" / "worker_count").write_text("2")
    (config / "job" / "config.json").write_text('{"batch_size": 200, "connection_ids": ["c1"]}')

    workers = [
        subprocess.Popen(
            [*CLI, "worker"],
            env=_worker_env(
                pg_url,
                kafka_broker,
                config,
                WORKER_INDEX=str(index),
                KAFKA_DESTINATIONS_TOPIC=topic,
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in range(2)
    ]
    for process in workers:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err

    want = expected_events([s.path for s in samples])
    records = kafka_broker.consume_all(topic, expected=sum(want.values()), timeout=60)
    assert Counter(r.value for r in records) == want
    assert {r.header("connection_ids") for r in records} == {b"c1"}
    with psycopg.connect(pg_url) as conn:
        jobs = conn.execute("SELECT id, status, total_workers FROM reprocessing_jobs").fetchall()
        rows = conn.execute(
            "SELECT worker_index, status FROM reprocessing_workers ORDER BY worker_index"
        ).fetchall()
    assert jobs == [("test-job-123", "completed", 2)]
    assert rows == [(0, "completed"), (1, "completed")]
