"""The object jobs run by a real engine worker: compose on demand, retention by cron."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tailrace import App
from tailrace.engine.jobs import JobFilter
from tailrace.engine.states import JobState
from tailrace.engine.worker import Worker, WorkerOptions
from tailrace.objects import COMPOSE_TASK, RETENTION_TASK, UploadStatus, UploadStore
from tailrace.objects.tasks import register_object_tasks
from tests.integration.objects.conftest import keys, read
from tests.waiting import wait_until


@pytest.fixture
def app(database_url: str) -> Any:
    with App(database_url) as app:
        yield app


def burst(app: App) -> None:
    Worker(app, WorkerOptions(burst=True, concurrency=2, poll_s=0.05)).run()


def test_default_schedule_is_daily_at_two(app: App, s3: Any) -> None:
    register_object_tasks(app, client=s3)
    assert app.schedules[RETENTION_TASK].cron.expression == "0 2 * * *"


def test_a_compose_job_completes_the_upload_record(app: App, s3: Any, bucket: str) -> None:
    composed: list[tuple[Any, str | None]] = []
    register_object_tasks(app, client=s3, on_composed=lambda r, u: composed.append((r, u)))
    with UploadStore(app.database_url) as store:
        store.begin("u1", bucket, "chunks/u1/")
    chunks = [f"chunks/u1/{i}" for i in range(3)]
    for i, key in enumerate(chunks):
        s3.put_object(Bucket=bucket, Key=key, Body=bytes([65 + i]) * (i + 1))

    app.enqueue(COMPOSE_TASK, {"bucket": bucket, "chunks": chunks, "target": "files/u1",
                               "upload_id": "u1", "presign_expires_s": 60})  # fmt: skip
    burst(app)

    assert [j.state for j in app.jobs()] == [JobState.SUCCEEDED]
    assert read(s3, bucket, "files/u1") == b"ABBCCC"
    assert keys(s3, bucket, "chunks/") == []
    with UploadStore(app.database_url) as store:
        record = store.get("u1")
    assert record is not None
    assert (record.status, record.target, record.size) == (UploadStatus.COMPLETED, "files/u1", 6)
    ((result, upload_id),) = composed
    assert upload_id == "u1" and result.url


def test_a_compose_job_with_a_missing_chunk_dies_naming_it(app: App, s3: Any, bucket: str) -> None:
    register_object_tasks(app, client=s3)
    with UploadStore(app.database_url) as store:
        store.begin("u2", bucket, "chunks/u2/")
    s3.put_object(Bucket=bucket, Key="chunks/u2/0", Body=b"a")
    args = {"bucket": bucket, "chunks": ["chunks/u2/0", "chunks/u2/1"], "target": "f/u2",
            "upload_id": "u2"}  # fmt: skip

    job_id = app.enqueue(COMPOSE_TASK, args, max_attempts=1)
    burst(app)

    job = app.job(job_id)
    assert job.state is JobState.DEAD
    assert f"chunk s3://{bucket}/chunks/u2/1 does not exist" in job.errors[-1]["error"]
    assert keys(s3, bucket) == ["chunks/u2/0"]
    with UploadStore(app.database_url) as store:
        record = store.get("u2")
    assert record is not None and record.status is UploadStatus.UPLOADING
    assert "chunks/u2/1" in (record.error or "")


def test_retention_runs_as_a_cron_job(app: App, s3: Any, bucket: str) -> None:
    register_object_tasks(app, client=s3, retention_schedule="* * * * * *")  # every second
    with UploadStore(app.database_url) as store:
        store.begin("old", bucket, "chunks/old/", created_at=datetime.now(UTC) - timedelta(days=2))
        store.begin("new", bucket, "chunks/new/")
    for key in ("chunks/old/0", "chunks/old/1", "chunks/new/0"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"chunk")
    worker = Worker(app, WorkerOptions(poll_s=0.05, maintenance_s=0.05))
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        done = JobFilter(task=RETENTION_TASK, state=JobState.SUCCEEDED)
        wait_until(lambda: app.jobs(done), timeout=20, what="a retention job fired by cron")
    finally:
        worker.stop()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert keys(s3, bucket) == ["chunks/new/0"]
    with UploadStore(app.database_url) as store:
        assert store.get("old").status is UploadStatus.FAILED  # type: ignore[union-attr]
        assert store.get("new").status is UploadStatus.UPLOADING  # type: ignore[union-attr]
