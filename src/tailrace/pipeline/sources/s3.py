"""Objects in S3 or an S3-compatible store (MinIO, Ceph, R2...) under a bucket and prefix.

Credentials, region and endpoint come from boto3's standard chain (``AWS_*`` variables,
shared config and credentials files, instance and container roles); ``AWS_ENDPOINT_URL`` or
the `endpoint_url` option points it at another store. Keys ending in ``/`` are the "folder"
markers consoles create, not files, and are skipped. The prefix is a plain key prefix, as in
S3 itself: ``s3://bucket/logs`` also lists ``logs-old/...``; end it with ``/`` for a folder.

Only log files are listed (`tailrace.pipeline.sources.select`: ``.ndjson``, ``.jsonl``,
``.json``, ``.log``, optionally ``.gz``/``.zst``; no ``*.tmp``, ``_SUCCESS``...), unless
`include` names them; an object named in full (the prefix is its key) is always read.
What is left out is counted in `skipped`.
"""

from __future__ import annotations

import io
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
)

from tailrace.pipeline.sources.base import (
    SourceAccessError,
    SourceError,
    SourceFile,
    SourceNotFoundError,
)
from tailrace.pipeline.sources.select import FileSelection, SkippedFiles
from tailrace.settings import current

DEFAULT_MAX_ATTEMPTS = 5
READ_BUFFER_BYTES = 1 << 20

_NOT_FOUND = frozenset({"NoSuchBucket", "NoSuchKey", "404", "NotFound"})
_DENIED = frozenset(
    {
        "AccessDenied",
        "403",
        "Forbidden",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
    }
)


class S3Source:
    """The objects of `bucket` whose keys start with `prefix`.

    `page_size` caps the keys per listing request (S3 returns at most 1,000 anyway);
    `max_attempts` is for botocore's adaptive retries of throttling and transient errors.
    Pass `client` to use a ready boto3 S3 client instead of building one.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        page_size: int | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        client: Any = None,
        include: tuple[str, ...] = (),
        exclude: tuple[str, ...] = (),
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.page_size = page_size
        self.selection = FileSelection(include, exclude)
        self.skipped = SkippedFiles()
        self.client = client or _client(endpoint_url, region_name, max_attempts)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> S3Source:
        """From ``s3://bucket/prefix``."""
        parts = urlsplit(url)
        if "@" in parts.netloc:
            # Never echo the URL back: what precedes "@" may be a secret.
            raise SourceError("S3 URL must not carry credentials; use AWS_* variables", "s3://")
        if not parts.netloc:
            raise SourceError(f"S3 URL without a bucket: {url!r}", url)
        return cls(parts.netloc, parts.path.lstrip("/"), **options)

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def list_files(self) -> list[SourceFile]:
        paging: dict[str, Any] = {"PageSize": self.page_size} if self.page_size else {}
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix, PaginationConfig=paging
        )
        files: list[SourceFile] = []
        self.skipped = SkippedFiles()
        try:
            for page in pages:
                files.extend(
                    SourceFile(
                        f"s3://{self.bucket}/{item['Key']}",
                        item["Size"],
                        item["LastModified"].timestamp() if "LastModified" in item else None,
                        item.get("ETag", "").strip('"') or None,
                    )
                    for item in page.get("Contents", ())
                    if not item["Key"].endswith("/") and self._selected(item["Key"])
                )
        except (BotoCoreError, ClientError) as exc:
            raise _source_error(exc, "list", self.url, self._endpoint) from None
        return sorted(files, key=lambda file: file.url)

    def _selected(self, key: str) -> bool:
        if key == self.prefix:
            return True  # named in full
        relative = key[len(self.prefix) :].lstrip("/")
        reason = self.selection.reason(key.rsplit("/", 1)[-1], relative)
        if reason is None:
            return True
        self.skipped.add(reason, relative)
        return False

    def open(self, file: SourceFile, offset: int = 0) -> BinaryIO:
        if offset < 0:
            raise ValueError(f"negative offset {offset} for {file.url}")
        bucket, key = _split(file.url)
        request: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if offset:
            # Not for offset 0: S3 refuses any range on an empty object.
            request["Range"] = f"bytes={offset}-"
        try:
            response = self.client.get_object(**request)
        except ClientError as exc:
            if offset and _code(exc) == "InvalidRange":
                return io.BytesIO()  # resuming at (or past) the end: nothing left to read
            raise _source_error(exc, "open", file.url, self._endpoint) from None
        except BotoCoreError as exc:
            raise _source_error(exc, "open", file.url, self._endpoint) from None
        body = _Body(response["Body"], file.url, self._endpoint, offset)
        return io.BufferedReader(body, READ_BUFFER_BYTES)

    @property
    def _endpoint(self) -> str:
        return str(self.client.meta.endpoint_url)


class _Body(io.RawIOBase):
    """botocore's streaming body as a raw binary stream, so that `io.BufferedReader` makes it
    a full `BinaryIO`; errors while streaming become `SourceError`."""

    def __init__(self, body: Any, url: str, endpoint: str, offset: int = 0) -> None:
        super().__init__()
        self._body = body
        self._url = url
        self._endpoint = endpoint
        self._position = offset

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        """Bytes of the object read so far (from its start): progress, not seeking."""
        return self._position

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        try:
            data = self._body.read(len(view))
        except BotoCoreError as exc:
            raise _source_error(exc, "read", self._url, self._endpoint) from None
        view[: len(data)] = data
        self._position += len(data)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


def _client(endpoint_url: str | None, region_name: str | None, max_attempts: int) -> Any:
    custom_endpoint = endpoint_url or current().s3_endpoint_url
    # S3-compatible stores mostly serve buckets as paths, not as host names (MinIO needs
    # its MINIO_DOMAIN set for those); AWS itself wants the default.
    s3_options = {"addressing_style": "path"} if custom_endpoint else {}
    config = Config(
        retries={"max_attempts": max_attempts, "mode": "adaptive"},
        s3=s3_options,
        connect_timeout=10,
        read_timeout=60,
    )
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint_url, region_name=region_name, config=config
    )


def _split(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.netloc, parts.path.lstrip("/")


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _source_error(exc: Exception, action: str, location: str, endpoint: str) -> SourceError:
    """A `SourceError` naming what failed and where. Built from the error's code and the
    server's one-line message only: never from the request, which carries the signature."""
    where = f"{location} (endpoint {endpoint})"
    if isinstance(exc, NoCredentialsError):
        return SourceAccessError(
            f"cannot {action} {where}: no AWS credentials found "
            "(set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)",
            location,
        )
    if isinstance(exc, EndpointConnectionError):
        return SourceError(f"cannot {action} {where}: cannot connect to the endpoint", location)
    if not isinstance(exc, ClientError):
        return SourceError(f"cannot {action} {where}: {type(exc).__name__}", location)
    code = _code(exc)
    message = str(exc.response.get("Error", {}).get("Message", "")).strip()
    detail = f"{code}: {message}" if message else code
    if code == "NoSuchBucket":
        bucket = _split(location)[0]
        return SourceNotFoundError(f"no such S3 bucket {bucket!r} at {endpoint}", location)
    if code in _NOT_FOUND:
        return SourceNotFoundError(f"cannot {action} {where}: not found ({detail})", location)
    if code in _DENIED:
        return SourceAccessError(f"cannot {action} {where}: access denied ({detail})", location)
    return SourceError(f"cannot {action} {where}: {detail}", location)
