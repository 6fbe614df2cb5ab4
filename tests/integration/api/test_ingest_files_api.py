"""The record of `tailrace ingest` over HTTP: list FAILED files, reset them for the next run."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from tailrace import App
from tailrace.pipeline.jobs import ReprocessingStore
from tailrace.pipeline.jobs.model import IngestStatus


def _record(url: str, bucket: str, *keys: str) -> None:
    with App(url) as app:
        app.store.migrate()
    with ReprocessingStore(url) as store:
        store.processed_record([(bucket, k, "etag", 10, float(i)) for i, k in enumerate(keys)])
        for key in keys:
            claimed = store.processed_claim_next(
                (bucket, key), "run1", max_attempts=3, stale_after_s=60
            )
            assert claimed is not None
            status = IngestStatus.FAILED if "bad" in key else IngestStatus.COMPLETED
            store.processed_finish(claimed, status, "unreadable: boom" if "bad" in key else None)


def test_failed_files_are_listed_and_reset(client: TestClient, pg_url: str, api_env: Path) -> None:
    _record(pg_url, "logs", "api/bad-1.json.gz", "api/good.json.gz", "web/bad-2.json.gz")

    listed = client.get("/api/admin/ingest/files")
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert [f["key"] for f in body["files"]] == ["api/bad-1.json.gz", "web/bad-2.json.gz"]
    assert body["files"][0] | {"job_id": None} == {
        "bucket": "logs",
        "key": "api/bad-1.json.gz",
        "version": "etag",
        "size": 10,
        "status": "FAILED",
        "attempts": 1,
        "job_id": None,
        "error": "unreadable: boom",
    }
    scoped = client.get("/api/admin/ingest/files", params={"source": "s3://logs/api/"})
    assert [f["key"] for f in scoped.json()["files"]] == ["api/bad-1.json.gz"]
    done = client.get("/api/admin/ingest/files", params={"status": "COMPLETED"})
    assert [f["key"] for f in done.json()["files"]] == ["api/good.json.gz"]

    assert client.post("/api/admin/ingest/files/reset", json={}).status_code == 422
    reset = client.post("/api/admin/ingest/files/reset", json={"source": "s3://logs/api/"})
    assert reset.status_code == 200, reset.text
    assert [(f["key"], f["status"], f["attempts"]) for f in reset.json()["files"]] == [
        ("api/bad-1.json.gz", "PENDING", 0)
    ]
    left = client.get("/api/admin/ingest/files").json()
    assert [f["key"] for f in left["files"]] == ["web/bad-2.json.gz"]
    everything = client.post("/api/admin/ingest/files/reset", json={"all": True})
    assert everything.json()["total"] == 1
    assert client.get("/api/admin/ingest/files").json() == {"files": [], "total": 0}


def test_the_record_needs_the_token(anonymous: TestClient) -> None:
    assert anonymous.get("/api/admin/ingest/files").status_code == 401
    assert anonymous.post("/api/admin/ingest/files/reset", json={"all": True}).status_code == 401
