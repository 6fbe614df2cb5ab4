"""Retention: delete the chunks of uploads abandoned for longer than a maximum age, and mark
their records failed (reference 004's upload garbage collector: 24 h, daily at 02:00).

An upload's age is its record's ``created_at``: S3's LastModified says when a chunk was last
written, not when its upload began, and cannot be set. Chunks are listed under the record's
prefix a page (1,000 keys) at a time and each page is deleted in one request. The record is
marked failed only once every chunk is gone; an upload whose chunks could not all be deleted
stays as it was and is tried again at the next run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from . import metrics
from .compose import DELETE_BATCH
from .uploads import UploadRecord, UploadStore

log = logging.getLogger("tailrace.objects.retention")

DEFAULT_MAX_AGE = timedelta(hours=24)
DEFAULT_BATCH = 100  # upload records read per query


@dataclass
class RetentionReport:
    uploads: int = 0  # records marked failed
    objects: int = 0  # chunks deleted
    bytes: int = 0
    errors: int = 0  # uploads left for the next run


def sweep(
    client: Any,
    store: UploadStore,
    *,
    max_age: timedelta = DEFAULT_MAX_AGE,
    batch_size: int = DEFAULT_BATCH,
    page_size: int = DELETE_BATCH,
    now: datetime | None = None,
) -> RetentionReport:
    """One retention run over every upload begun more than ``max_age`` before ``now``."""
    before = (now or datetime.now(UTC)) - max_age
    report = RetentionReport()
    metrics.RETENTION_RUNS.inc()
    last: UploadRecord | None = None
    while batch := store.abandoned(before, batch_size, after=last):
        for record in batch:
            _collect(client, store, record, max_age, page_size, report)
        last = batch[-1]
    log.info(
        "retention run",
        extra={
            "uploads": report.uploads,
            "objects": report.objects,
            "bytes": report.bytes,
            "errors": report.errors,
            "max_age_s": max_age.total_seconds(),
        },
    )
    return report


def _collect(
    client: Any,
    store: UploadStore,
    record: UploadRecord,
    max_age: timedelta,
    page_size: int,
    report: RetentionReport,
) -> None:
    try:
        objects, size, failed = delete_prefix(client, record.bucket, record.prefix, page_size)
    except (ClientError, BotoCoreError) as exc:
        failed, objects, size = -1, 0, 0
        log.warning(
            "retention could not clean an upload",
            extra={"upload_id": record.id, "bucket": record.bucket, "error": str(exc)},
        )
    report.objects += objects
    report.bytes += size
    metrics.RETENTION_DELETED.inc(objects)
    metrics.RETENTION_BYTES.inc(size)
    if failed:
        report.errors += 1
        metrics.RETENTION_ERRORS.inc()
        return
    hours = max_age.total_seconds() / 3600
    if store.fail(
        record.id, f"abandoned: not composed within {hours:g} h; {objects} chunks deleted"
    ):
        report.uploads += 1
        metrics.RETENTION_UPLOADS.inc()


def delete_prefix(
    client: Any, bucket: str, prefix: str, page_size: int = DELETE_BATCH
) -> tuple[int, int, int]:
    """Delete every object under ``prefix``, a listing page per request; returns the objects
    and bytes deleted and how many deletes failed."""
    if not prefix:
        raise ValueError("refusing to delete a whole bucket: empty prefix")
    deleted = size = failed = 0
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": min(page_size, DELETE_BATCH)}
    )
    for page in pages:
        sizes = {item["Key"]: int(item["Size"]) for item in page.get("Contents", ())}
        if not sizes:
            continue
        response = client.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": k} for k in sizes], "Quiet": True}
        )
        errors = {e["Key"] for e in response.get("Errors", ())}
        failed += len(errors)
        deleted += len(sizes) - len(errors)
        size += sum(n for k, n in sizes.items() if k not in errors)
    return deleted, size, failed
