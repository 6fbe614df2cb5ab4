"""Upload records: what the object jobs know about each chunked upload.

A record is made when an upload starts (`UploadStore.begin`, by the application that accepts
the chunks), marked completed by compose, and marked failed by retention when it was left
uploading too long. It lives in the engine's database (SQLite or PostgreSQL, the App's URL), in
the table of the ``objects`` migration line (``tailrace db migrate``, or the App on first
start). Each process opens its own `UploadStore`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from ..db import ConnectionPolicy, Database, Dialect, load_queries
from .errors import ObjectJobError

_QUERIES = {d: load_queries("tailrace.objects", "uploads.sql", d) for d in Dialect}
# A lost connection is opened again by the next call, never by repeating a statement: a
# `fail` repeated after its commit was lost would say the upload was no longer uploading.
_POLICY = ConnectionPolicy(retry_for_s=0.0)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class UploadStatus(StrEnum):
    UPLOADING = "uploading"  # chunks are arriving; retention fails it after the max age
    COMPLETED = "completed"  # composed and verified; its chunks are deleted
    FAILED = "failed"  # abandoned: retention deleted its chunks


@dataclass(frozen=True, slots=True)
class UploadRecord:
    id: str
    bucket: str
    prefix: str  # every chunk's key starts with it: what retention deletes
    status: UploadStatus
    target: str | None
    size: int | None
    etag: str | None
    error: str | None
    created_at: datetime
    updated_at: datetime


class UploadStore:
    """Reads and writes upload records; every method is one short statement."""

    def __init__(self, database_url: str) -> None:
        self._db = Database(database_url, _POLICY, "upload records")
        self._db.connect()
        self._dialect = self._db.dialect
        self._postgres = self._db.postgres
        self._q = _QUERIES[self._dialect]

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> UploadStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _time(self, value: datetime) -> Any:
        return self._dialect.timestamp(value)

    def _run(self, name: str, **params: Any) -> Any:
        params.setdefault("now", self._dialect.now())
        return self._db.execute(self._q[name], params)

    def _record(self, row: tuple[Any, ...]) -> UploadRecord:
        *head, created, updated = row
        if not self._postgres:
            created = datetime.fromtimestamp(created, UTC)
            updated = datetime.fromtimestamp(updated, UTC)
        id_, bucket, prefix, status, target, size, etag, error = head
        return UploadRecord(
            id_, bucket, prefix, UploadStatus(status), target, size, etag, error, created, updated
        )

    def begin(
        self, upload_id: str, bucket: str, prefix: str, *, created_at: datetime | None = None
    ) -> None:
        """Record an upload whose chunks go under ``prefix``; a second call changes nothing.

        Retention deletes every key that starts with ``prefix``: end it with ``/`` unless
        one upload's prefix can never start another's.
        """
        if not prefix:
            raise ObjectJobError(f"upload {upload_id!r}: an empty prefix would be the bucket")
        when = self._time(created_at or datetime.now(UTC))
        self._run("upload_insert", id=upload_id, bucket=bucket, prefix=prefix, created_at=when)

    def get(self, upload_id: str) -> UploadRecord | None:
        rows = self._run("upload_get", id=upload_id)
        return self._record(rows[0]) if rows else None

    def abandoned(
        self, before: datetime, limit: int, after: UploadRecord | None = None
    ) -> list[UploadRecord]:
        """Uploads still uploading that began before ``before``, oldest first, from just past
        ``after`` (pages that skip what a sweep left, so it never sees a record twice)."""
        rows = self._run(
            "uploads_abandoned",
            before=self._time(before),
            limit=limit,
            after_at=self._time(after.created_at if after else _EPOCH),
            after_id=after.id if after else "",
        )
        return [self._record(row) for row in rows]

    def complete(self, upload_id: str, target: str, size: int, etag: str) -> None:
        self._run("upload_complete", id=upload_id, target=target, size=size, etag=etag)

    def note_error(self, upload_id: str, error: str) -> None:
        """Keep the last compose error on a record that stays uploading (it may be retried)."""
        self._run("upload_note_error", id=upload_id, error=error)

    def fail(self, upload_id: str, error: str) -> bool:
        """Mark an upload failed; False if it was no longer uploading (composed meanwhile)."""
        return bool(self._run("upload_fail", id=upload_id, error=error))
