"""The object jobs as engine tasks: compose on demand, retention on a schedule."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import asdict
from datetime import timedelta
from typing import Any

from ..engine.app import App
from ..observability.tracing import traced_task
from .client import s3_client
from .compose import ComposeResult, Verify, compose, delete_keys
from .errors import ChunkMissingError, ObjectJobError, VerificationError
from .retention import DEFAULT_BATCH, DEFAULT_MAX_AGE, sweep
from .uploads import UploadStatus, UploadStore

COMPOSE_TASK = "tailrace.objects.compose"
RETENTION_TASK = "tailrace.objects.retention"
DEFAULT_SCHEDULE = "0 2 * * *"  # daily at 02:00 (UTC, as every engine schedule)


def register_object_tasks(
    app: App,
    *,
    endpoint_url: str | None = None,
    region_name: str | None = None,
    retention_schedule: str | None = DEFAULT_SCHEDULE,
    max_age: timedelta = DEFAULT_MAX_AGE,
    batch_size: int = DEFAULT_BATCH,
    queue: str | None = None,
    on_composed: Callable[[ComposeResult, str | None], None] | None = None,
    client: Any = None,
) -> None:
    """Register ``tailrace.objects.compose`` and ``tailrace.objects.retention`` on ``app``,
    and schedule retention (``retention_schedule=None``: no schedule).

    ``on_composed(result, upload_id)`` runs after a compose job (to hand the presigned URL
    on, say). ``client``: a ready boto3 S3 client; by default one per process is built from
    ``endpoint_url`` and boto3's usual configuration.
    """
    clients = _Clients(client, endpoint_url, region_name)

    @app.task(name=COMPOSE_TASK, queue=queue)
    @traced_task
    def compose_job(
        bucket: str,
        chunks: list[str],
        target: str,
        upload_id: str | None = None,
        verify: Verify = "etag",
        expected_sha256: str | None = None,
        presign_expires_s: int | None = None,
        delete_chunks: bool = True,
    ) -> dict[str, Any]:
        s3 = clients.get()
        options: dict[str, Any] = {
            "verify": verify,
            "expected_sha256": expected_sha256,
            "presign_expires_s": presign_expires_s,
        }
        if upload_id is None:
            result = compose(s3, bucket, chunks, target, delete_chunks=delete_chunks, **options)
        else:
            with UploadStore(app.database_url) as store:
                result = compose_upload(
                    s3, store, upload_id, bucket, chunks, target, delete_chunks, options
                )
        if on_composed is not None:
            on_composed(result, upload_id)
        return asdict(result)

    @app.task(name=RETENTION_TASK, queue=queue)
    @traced_task
    def retention_job(max_age_s: float | None = None, batch: int | None = None) -> dict[str, int]:
        age = timedelta(seconds=max_age_s) if max_age_s is not None else max_age
        with UploadStore(app.database_url) as store:
            report = sweep(clients.get(), store, max_age=age, batch_size=batch or batch_size)
        return asdict(report)

    if retention_schedule is not None:
        app.periodic(retention_schedule, RETENTION_TASK, name=RETENTION_TASK, queue=queue)


def compose_upload(
    s3: Any,
    store: UploadStore,
    upload_id: str,
    bucket: str,
    chunks: list[str],
    target: str,
    delete_chunks: bool,
    options: dict[str, Any],
) -> ComposeResult:
    """Compose an upload that has a record: completed before its chunks go, so that an
    attempt retried after a crash mid-delete finishes the delete instead of failing on
    chunks that are gone."""
    record = store.get(upload_id)
    if record is None:
        raise ObjectJobError(f"no upload record {upload_id!r}")
    if record.status is UploadStatus.FAILED:
        raise ObjectJobError(f"upload {upload_id!r} was abandoned: {record.error}")
    if target.startswith(record.prefix):
        raise ObjectJobError(f"target {target!r} is under the chunks' prefix {record.prefix!r}")
    if record.status is UploadStatus.COMPLETED and record.target == target:
        deleted, leftover = delete_keys(s3, bucket, chunks) if delete_chunks else (0, ())
        size, etag = record.size or 0, record.etag or ""
        return ComposeResult(bucket, target, size, etag, 0, deleted=deleted, leftover=leftover)
    try:
        result = compose(s3, bucket, chunks, target, delete_chunks=False, **options)
    except (ChunkMissingError, VerificationError) as exc:
        store.note_error(upload_id, str(exc))  # stays uploading: a retry may find the chunk
        raise
    store.complete(upload_id, target, result.size, result.etag)
    if not delete_chunks:
        return result
    deleted, leftover = delete_keys(s3, bucket, chunks)
    return dataclasses.replace(result, deleted=deleted, leftover=leftover)


class _Clients:
    """One boto3 client per process, built on first use (they are thread-safe)."""

    def __init__(self, client: Any, endpoint_url: str | None, region_name: str | None) -> None:
        self._client = client
        self._endpoint_url = endpoint_url
        self._region_name = region_name
        self._lock = threading.Lock()

    def get(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = s3_client(self._endpoint_url, self._region_name)
            return self._client
