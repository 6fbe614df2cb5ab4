"""A ready-made stream handler for chunked uploads: one merge request in, the composed
object and its download link out, with no code of the user's.

    tailrace consume file_merge_requests --group file-merge-worker-group \\
        --handler tailrace.objects:merge_requests

A request is a JSON object with ``upload_id`` and, optionally, ``storage_key`` (the target;
else ``files/<upload_id>/<filename>``), ``total_chunks`` (checked against the chunks found),
``chunks`` (their keys in order; else every key under ``chunks/<upload_id>/``, in key order,
as zero-padded chunk numbers sort) and ``bucket``. The chunks are composed server-side,
verified, deleted, and a ``file_upload_completed`` message (the request's fields plus
``storage_key``, ``bucket``, ``size_bytes``, ``etag``, ``download_url``, ``completed_at``)
is produced, keyed by the upload id.

A request delivered again after its merge (chunks gone, target present) produces the
message again from the stored object: a crash between the merge and the commit repeats the
message, never the merge. A request whose chunks are missing or fewer than
``total_chunks`` fails, and after the consumer's retries goes to the dead-letter topic.

Settings (environment): the store from ``MINIO_ENDPOINT`` (``host:port``; ``https`` when
``MINIO_SECURE=true``), ``MINIO_ACCESS_KEY`` and ``MINIO_SECRET_KEY``, else boto3's usual
ones (``AWS_ENDPOINT_URL``…); the bucket from ``MINIO_BUCKET`` or ``TAILRACE_MERGE_BUCKET``;
``TAILRACE_MERGE_CHUNK_PREFIX`` (``chunks/{upload_id}/``), ``TAILRACE_MERGE_TOPIC``
(``file_upload_completed``) and ``TAILRACE_MERGE_PRESIGN_S`` (3600).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from botocore.exceptions import ClientError

from ..errors import ConfigurationError
from ..settings import current
from ..streams.consumer.message import Message, Output
from .client import is_not_found, s3_client
from .compose import compose
from .errors import ObjectJobError

DEFAULT_CHUNK_PREFIX = "chunks/{upload_id}/"
DEFAULT_TOPIC = "file_upload_completed"
DEFAULT_PRESIGN_S = 3600


@dataclass(frozen=True)
class MergeSettings:
    bucket: str | None
    chunk_prefix: str = DEFAULT_CHUNK_PREFIX
    topic: str = DEFAULT_TOPIC
    presign_s: int = DEFAULT_PRESIGN_S

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> MergeSettings:
        """``TAILRACE_MERGE_*`` (``MINIO_BUCKET`` for the bucket), or tailrace.toml."""
        settings = current(environ)
        return cls(
            bucket=settings.merge_bucket,
            chunk_prefix=settings.merge_chunk_prefix,
            topic=settings.merge_topic,
            presign_s=settings.merge_presign_s,
        )


def client_from_env(environ: Mapping[str, str] | None = None) -> Any:
    """An S3 client on MinIO's settings when they are set, else on boto3's."""
    settings = current(environ)
    endpoint = settings.minio_endpoint
    if endpoint and "://" not in endpoint:
        endpoint = f"{'https' if settings.minio_secure else 'http'}://{endpoint}"
    return s3_client(
        endpoint or None,
        access_key=settings.minio_access_key,
        secret_key=settings.minio_secret_key,
    )


class MergeRequests:
    """The handler; `merge_requests` is one built from the environment on first use."""

    def __init__(self, client: Any = None, settings: MergeSettings | None = None) -> None:
        self._client = client
        self._settings = settings
        self._lock = threading.Lock()

    def _ready(self) -> tuple[Any, MergeSettings]:
        with self._lock:
            if self._settings is None:
                self._settings = MergeSettings.from_env()
            if self._client is None:
                self._client = client_from_env()
            return self._client, self._settings

    def __call__(self, message: Message) -> list[Output]:
        client, settings = self._ready()
        request = _request(message.value)
        upload_id = str(request["upload_id"])
        bucket = str(request.get("bucket") or settings.bucket or "")
        if not bucket:
            raise ConfigurationError("no bucket: set MINIO_BUCKET (or put bucket in the request)")
        target = str(
            request.get("storage_key") or f"files/{upload_id}/{request.get('filename') or 'file'}"
        )
        chunks = request.get("chunks")
        if chunks is None:
            prefix = settings.chunk_prefix.format(upload_id=upload_id)
            chunks = _keys(client, bucket, prefix)
        chunks = [str(key) for key in chunks]
        done: dict[str, Any] = {"bucket": bucket, "storage_key": target}
        if not chunks and _exists(client, bucket, target):
            # Merged before (its chunks deleted): only the message was not acknowledged.
            head = client.head_object(Bucket=bucket, Key=target)
            done |= {"size_bytes": head["ContentLength"], "etag": head["ETag"].strip('"')}
        else:
            expected = request.get("total_chunks")
            if expected is not None and len(chunks) != int(expected):
                raise ObjectJobError(
                    f"upload {upload_id}: {len(chunks)} chunks in s3://{bucket}, "
                    f"{expected} expected; nothing was merged or deleted"
                )
            result = compose(client, bucket, chunks, target)
            done |= {"size_bytes": result.size, "etag": result.etag}
        url = client.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": target}, ExpiresIn=settings.presign_s
        )
        completed = {
            **request,
            **done,
            "download_url": url,
            "completed_at": datetime.now(UTC).isoformat(),
        }
        return [Output(orjson.dumps(completed), key=upload_id, topic=settings.topic)]


def _request(value: bytes | None) -> dict[str, Any]:
    try:
        request = orjson.loads(value or b"")
    except orjson.JSONDecodeError as exc:
        raise ObjectJobError(f"a merge request is a JSON object: {exc}") from None
    if not isinstance(request, dict) or not request.get("upload_id"):
        raise ObjectJobError("a merge request needs an upload_id")
    return request


def _keys(client: Any, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(item["Key"] for item in page.get("Contents", ()))
    return sorted(keys)


def _exists(client: Any, bucket: str, key: str) -> bool:
    try:
        client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if is_not_found(exc):
            return False
        raise
    return True


merge_requests = MergeRequests()
