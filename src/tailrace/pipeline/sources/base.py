"""What every source is: a list of files with their sizes, each opened as a binary stream."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

from tailrace.errors import TailraceError


class SourceError(TailraceError):
    """A source cannot be listed or a file of it cannot be opened.

    `location` is the path, glob or URL the error is about. Messages never carry credentials.
    """

    def __init__(self, message: str, location: str) -> None:
        super().__init__(message)
        self.location = location


class SourceNotFoundError(SourceError):
    """A file, directory, bucket or key that does not exist, or a glob that matches nothing."""


class SourceAccessError(SourceError):
    """Permission denied, or no usable credentials."""


@dataclass(frozen=True, slots=True)
class SourceFile:
    """One stored file: `url` is an absolute local path or ``s3://bucket/key``.

    `modified` (Unix seconds) and `etag` (S3's, else None) tell versions of a file apart,
    for incremental ingestion; listings fill them in, other callers may leave them out.
    """

    url: str
    size: int
    modified: float | None = field(default=None, compare=False)
    etag: str | None = field(default=None, compare=False)

    @property
    def name(self) -> str:
        """The last component of the path or key."""
        return self.url.rsplit("/", 1)[-1]


class Source(Protocol):
    """Where log files are stored."""

    def list_files(self) -> list[SourceFile]:
        """Every file of the source with its size, sorted by url."""
        ...

    def open(self, file: SourceFile, offset: int = 0) -> BinaryIO:
        """`file` as stored (compressed or not), from byte `offset` on."""
        ...


def open_source(spec: str, **options: Any) -> Source:
    """The source `spec` names: ``s3://bucket/prefix``, else a local file, directory or glob.

    `options` go to the source's constructor (for S3: `endpoint_url`, `region_name`,
    `page_size`, `max_attempts`).
    """
    # Imported here so that local runs never pay for importing boto3.
    if spec[:5].lower() == "s3://":
        from tailrace.pipeline.sources.s3 import S3Source

        return S3Source.from_url(spec, **options)
    from tailrace.pipeline.sources.local import LocalSource

    return LocalSource(spec, **options)
