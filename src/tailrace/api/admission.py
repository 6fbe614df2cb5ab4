"""What a job started through the API may read and where it may write.

The service reads files and opens connections with its own rights and credentials, on
behalf of whoever holds a token. So a request may name:

- local files only under ``TAILRACE_API_SOURCE_ROOTS`` (default: the directory the service
  runs in), checked after symlinks are resolved, for the pattern and for every file found;
- as a sink: a reference ``@name`` (resolved from ``TAILRACE_SINK_<NAME>``), ``null:``,
  the service's default sink, or a ``file:`` under those roots or the data directory.
  Another URL would have the service send its credentials (``PGPASSWORD``, ``KAFKA_SASL_*``)
  to a host of the caller's choosing; ``TAILRACE_API_ALLOW_SINK_URLS=true`` allows it for a
  service whose token holders are trusted as much as the service;
- an S3 endpoint only under that same setting.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..pipeline.sinks.url import SinkKind, SinkURLError, parse_sink_url
from ..pipeline.sources import SourceFile
from .config import ApiConfig
from .errors import ApiError

_GLOB_CHARS = frozenset("*?[")


def _within(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def _static_prefix(pattern: str) -> Path:
    """The part of a glob before its first wildcard: the directory it cannot leave."""
    parts = Path(pattern).parts
    kept: list[str] = []
    for part in parts:
        if _GLOB_CHARS & set(part):
            break
        kept.append(part)
    return Path(*kept) if kept else Path(".")


def check_local_source(config: ApiConfig, path: str) -> None:
    # (on Kubernetes a path works where the pods mount the same volume at the same place)
    where = Path(os.path.realpath(_static_prefix(os.path.expanduser(path))))
    if not _within(where, config.source_roots):
        raise ApiError(403, "path_not_allowed", _outside(path, config))


def check_local_files(config: ApiConfig, files: Sequence[SourceFile]) -> None:
    """Every file found, symlinks resolved, must be under the roots too."""
    for f in files:
        if not _within(Path(os.path.realpath(f.url)), config.source_roots):
            raise ApiError(403, "path_not_allowed", _outside(f.url, config))


def _outside(path: str, config: ApiConfig) -> str:
    roots = ", ".join(str(r) for r in config.source_roots)
    return (
        f"{path} is outside the directories this service reads ({roots}; TAILRACE_API_SOURCE_ROOTS)"
    )


def check_sink(config: ApiConfig, sink: str) -> None:
    if sink.startswith("@") or sink == config.default_sink or config.allow_sink_urls:
        return
    try:
        spec = parse_sink_url(sink)
    except SinkURLError:
        return  # planning refuses it with the parser's own message
    if spec.kind is SinkKind.NULL:
        return
    if spec.kind is SinkKind.FILE and spec.path is not None:
        where = Path(os.path.realpath(spec.path))
        if _within(where, (*config.source_roots, config.data_dir.resolve())):
            return
        raise ApiError(
            403, "sink_not_allowed", f"{spec.path} is outside the directories this service writes"
        )
    raise ApiError(
        403,
        "sink_not_allowed",
        "name a sink configured on the service (@name for TAILRACE_SINK_<NAME>): the service "
        "connects with its own credentials, so it does not take other sink URLs "
        "(TAILRACE_API_ALLOW_SINK_URLS=true lifts this)",
    )


def check_endpoint(config: ApiConfig, endpoint: str | None) -> None:
    if endpoint is not None and not config.allow_sink_urls:
        raise ApiError(
            403,
            "endpoint_not_allowed",
            "s3_endpoint_url is set on the service (AWS_ENDPOINT_URL), not per request "
            "(TAILRACE_API_ALLOW_SINK_URLS=true lifts this)",
        )
