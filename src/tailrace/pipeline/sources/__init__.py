"""Where log files come from: local files, directories and globs, and S3 prefixes.

`open_source` picks the source from its spec; every source lists `SourceFile` records (url
and size) and opens each as a binary stream, from a byte offset when resuming.
"""

from tailrace.pipeline.sources.base import (
    Source,
    SourceAccessError,
    SourceError,
    SourceFile,
    SourceNotFoundError,
    open_source,
)
from tailrace.pipeline.sources.local import LocalSource

__all__ = [
    "LocalSource",
    "Source",
    "SourceAccessError",
    "SourceError",
    "SourceFile",
    "SourceNotFoundError",
    "open_source",
]
