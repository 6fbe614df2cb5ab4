"""Retention: abandoned uploads (by their record's age) lose their chunks and are marked
failed; young and completed ones are left alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tailrace.objects import UploadStatus, UploadStore, sweep
from tailrace.objects import metrics as object_metrics
from tests.integration.objects.conftest import keys

NOW = datetime.now(UTC)
OLD = NOW - timedelta(hours=30)


def upload(s3: Any, store: UploadStore, bucket: str, name: str, created: datetime, n: int) -> None:
    # S3 can't backdate LastModified: an upload's age is its record's created_at
    store.begin(name, bucket, f"chunks/{name}/", created_at=created)
    for i in range(n):
        s3.put_object(Bucket=bucket, Key=f"chunks/{name}/{i:04d}", Body=b"x" * (i + 1))


def counter(metric: Any) -> float:
    return float(metric._value.get())


def test_retention_deletes_old_chunks_only_and_marks_them_failed(
    s3: Any, bucket: str, database_url: str
) -> None:
    runs, deleted = (
        counter(object_metrics.RETENTION_RUNS),
        counter(object_metrics.RETENTION_DELETED),
    )
    with UploadStore(database_url) as store:
        upload(s3, store, bucket, "old-a", OLD, 7)
        upload(s3, store, bucket, "old-b", OLD + timedelta(minutes=1), 3)
        upload(s3, store, bucket, "young", NOW - timedelta(hours=1), 2)
        upload(s3, store, bucket, "done", OLD, 1)
        store.complete("done", "files/done", 1, "etag")
        s3.put_object(Bucket=bucket, Key="chunks/old-a-other/0", Body=b"not under old-a/")

        # pages of 2 keys and 1 record: the listing and the record queries both paginate
        report = sweep(s3, store, max_age=timedelta(hours=24), batch_size=1, page_size=2, now=NOW)

        assert (report.uploads, report.objects, report.errors) == (2, 10, 0)
        assert report.bytes == sum(range(1, 8)) + sum(range(1, 4))
        assert keys(s3, bucket) == [
            "chunks/done/0000",
            "chunks/old-a-other/0",
            "chunks/young/0000",
            "chunks/young/0001",
        ]
        statuses = {n: store.get(n).status for n in ("old-a", "old-b", "young", "done")}  # type: ignore[union-attr]
        assert statuses == {
            "old-a": UploadStatus.FAILED,
            "old-b": UploadStatus.FAILED,
            "young": UploadStatus.UPLOADING,
            "done": UploadStatus.COMPLETED,
        }
        assert "not composed within 24 h; 7 chunks deleted" in (store.get("old-a").error or "")  # type: ignore[union-attr]
        # a second run finds nothing left to do
        assert sweep(s3, store, now=NOW).uploads == 0
    assert counter(object_metrics.RETENTION_RUNS) - runs == 2
    assert counter(object_metrics.RETENTION_DELETED) - deleted == 10


def test_an_upload_that_cannot_be_cleaned_is_kept_for_the_next_run(
    s3: Any, bucket: str, database_url: str
) -> None:
    errors = counter(object_metrics.RETENTION_ERRORS)
    with UploadStore(database_url) as store:
        store.begin("lost", "tailrace-no-such-bucket", "chunks/lost/", created_at=OLD)
        upload(s3, store, bucket, "old", OLD + timedelta(seconds=1), 2)

        report = sweep(s3, store, now=NOW)

        assert (report.uploads, report.objects, report.errors) == (1, 2, 1)
        assert store.get("lost").status is UploadStatus.UPLOADING  # type: ignore[union-attr]
        assert store.get("old").status is UploadStatus.FAILED  # type: ignore[union-attr]
    assert counter(object_metrics.RETENTION_ERRORS) - errors == 1
