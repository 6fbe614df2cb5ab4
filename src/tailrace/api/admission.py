"""What a job started through the API may read and where it may write.

The service reads files and opens connections with its own rights and credentials, on
behalf of whoever holds a token. So a request may name:

- local files only under ``TAILRACE_API_SOURCE_ROOTS`` (default: the directory the service
  runs in), checked after symlinks are resolved, for the pattern and for every file found,
  and again by the worker when it opens each file (the roots are stored with the job);
  never the service's data directory or job store, whatever the roots say (its token, its
  database: `tailrace.pipeline.confine`);
- as a sink: a reference ``@name`` (resolved from ``TAILRACE_SINK_<NAME>``), ``null:``,
  the service's default sink, or a ``file:`` under those roots or in the data directory's
  ``out`` directory (the default output), never elsewhere in the data directory; the file
  and its dead letters are checked again when a worker opens them.
  Another URL would have the service send its credentials (``PGPASSWORD``, ``KAFKA_SASL_*``)
  to a host of the caller's choosing; ``TAILRACE_API_ALLOW_SINK_URLS=true`` allows it for a
  service whose token holders are trusted as much as the service;
- an S3 endpoint only under that same setting.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..pipeline.confine import OUTPUT_DIR, own_files_reason
from ..pipeline.sinks.kinds import sink_kind
from ..pipeline.sinks.url import SinkURLError, parse_sink_url
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


def job_roots(config: ApiConfig) -> tuple[str, ...]:
    """The directories a job started through the API may read, checked by its workers at
    every open."""
    return tuple(str(root) for root in config.source_roots)


def job_write_roots(config: ApiConfig) -> tuple[str, ...]:
    """Where its file sink may write: the source roots and the data directory's output
    directory; anywhere (but tailrace's own files) with TAILRACE_API_ALLOW_SINK_URLS."""
    if config.allow_sink_urls:
        return ()
    output = Path(os.path.realpath(config.data_dir / OUTPUT_DIR))
    return tuple(str(root) for root in (*config.source_roots, output))


def check_local_source(config: ApiConfig, path: str) -> None:
    # (on Kubernetes a path works where the pods mount the same volume at the same place)
    where = Path(os.path.realpath(_static_prefix(os.path.expanduser(path))))
    own = own_files_reason(str(where), writing=False)
    if own is not None:
        raise ApiError(403, "path_not_allowed", f"{path}: {own}")
    if not _within(where, config.source_roots):
        raise ApiError(403, "path_not_allowed", _outside(path, config))


def check_local_files(config: ApiConfig, files: Sequence[SourceFile]) -> None:
    """Every file found, symlinks resolved, must be under the roots too, and none of the
    service's own."""
    for f in files:
        where = os.path.realpath(f.url)
        own = own_files_reason(where, writing=False)
        if own is not None:
            raise ApiError(403, "path_not_allowed", f"{f.url}: {own}")
        if not _within(Path(where), config.source_roots):
            raise ApiError(403, "path_not_allowed", _outside(f.url, config))


def _roots(config: ApiConfig) -> str:
    return ", ".join(str(r) for r in config.source_roots)


def _outside(path: str, config: ApiConfig) -> str:
    return (
        f"{path} is outside the directories this service reads "
        f"({_roots(config)}; TAILRACE_API_SOURCE_ROOTS)"
    )


def check_sink(config: ApiConfig, sink: str) -> None:
    if sink.startswith("@") or sink == config.default_sink:
        return
    try:
        spec = parse_sink_url(sink)
    except SinkURLError:
        return  # planning refuses it with the parser's own message
    kind = sink_kind(spec)
    if kind.always_admitted:
        return
    if files := kind.local_files(spec):
        for target in files:
            where = os.path.realpath(target)
            own = own_files_reason(where, writing=True)
            if own is not None:
                raise ApiError(
                    403,
                    "sink_not_allowed",
                    f"{target}: {own}; name a file under {_roots(config)} instead",
                )
            if config.allow_sink_urls:
                continue
            if not _within(Path(where), [Path(root) for root in job_write_roots(config)]):
                raise ApiError(
                    403,
                    "sink_not_allowed",
                    f"{target} is outside the directories this service writes "
                    f"({_roots(config)}; TAILRACE_API_SOURCE_ROOTS)",
                )
        return
    if config.allow_sink_urls:
        return
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
