"""Incremental ingestion: each run takes, one at a time, the files of a source it has not
completed before, in the chronological order of their logs.

The record (`tailrace_processed_files`) holds one row per version of a file: bucket, key and
ETag (S3) or size (local files). A run lists the source and records what is new as PENDING,
with its order time in `modified`: the time of the file's first log record (``timestamp``,
pino's ``time``, or the job's time fields), read from its first bytes once, when the file is
first seen; the store's modification time when no record says. Then it claims one file at a
time (under a lock that serialises claims): the first in that order that is PENDING, FAILED
with attempts left, or PROCESSING under a run that stopped saying it is alive. It reads the
file in this process, records the outcome, and claims the next; so several runs at once
share the files (each adds throughput), and a file is never read by two live runs.

A run's files form one reprocessing job, which grows by a file at each claim. A file's sink
checkpoint is keyed by its version (and, in PostgreSQL, by the target table), so a retried
file resumes where the last run stopped. A new version of a file (re-uploaded, fixed) is
loaded again: the PostgreSQL sink stores only its records not stored before, and counts the
others as skipped duplicates. A file's outcome in the record is its reprocessing file
status: COMPLETED only when its job's file is, else FAILED with the file's error.

A run touches its files every `HEARTBEAT_S` (from a thread, while a file is read); another
run takes a PROCESSING file only after `stale_after_s` without a touch, which must be at
least `MIN_STALE_AFTER_S`. Should it take a file still being read anyway (a run paused
longer than that), the PostgreSQL sink's claim stops the first run from committing anything
more for that file.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson

from tailrace.engine.app import App, JobSpec
from tailrace.pipeline.decoders import LineReader
from tailrace.pipeline.events import EventFields, lookup, parse_event_time
from tailrace.pipeline.jobs import ReprocessingConfig, ReprocessingJob, ReprocessingStore
from tailrace.pipeline.jobs.model import IngestStatus, ProcessedFile, ReprocessingStatus
from tailrace.pipeline.jobs.store import Scope
from tailrace.pipeline.plan import REPROCESS_TASK, job_queue, list_source, new_job_id
from tailrace.pipeline.runtime import check_config, event_fields, source_for
from tailrace.pipeline.sinks import open_sink, parse_sink_url
from tailrace.pipeline.sinks.reach import check_reachable
from tailrace.pipeline.sinks.url import SinkKind
from tailrace.pipeline.sources import Source, SourceFile

log = logging.getLogger("tailrace.ingest")

DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_STALE_AFTER_S = 600.0
# A live run says so this often (`processed_touch`); a file counts as left by a dead run only
# after several of those were missed, or a run still reading it would lose it to another.
HEARTBEAT_S = 10.0
MIN_STALE_AFTER_S = 6 * HEARTBEAT_S
# Where a file's first log time is looked for: pino's fields after the job's time fields.
_ORDER_FIELDS = (("timestamp",), ("time",))
_PEEK_RECORDS = 50  # records read at most to find a time (a header line, a bad line...)


STOPPED = "stopped before its end: the run was stopped; the next run resumes it"


class IngestStoppedError(Exception):
    """The run was stopped while it read a file (recorded FAILED, to be resumed)."""


class StaleAfterTooShortError(ValueError):
    """`stale_after_s` below `MIN_STALE_AFTER_S`: live runs' files would be taken again."""


def identity(file: SourceFile) -> tuple[str, str, str]:
    """(bucket, key, version) of a listed file; local files have an empty bucket."""
    bucket, key = split_location(file.url)
    return bucket, key, file.etag or f"size:{file.size}"


def split_location(url: str) -> Scope:
    """(bucket, key) of ``s3://bucket/key``; ("", path) for a local path."""
    if url[:5].lower() == "s3://":
        bucket, _, key = url[5:].partition("/")
        return bucket, key
    return "", url


def scope_of(source: str) -> Scope:
    """The part of the record a source covers: its bucket and key prefix (a local directory
    covers the paths under it)."""
    bucket, prefix = split_location(source)
    if not bucket:  # as the local source names its files
        prefix = os.path.abspath(os.path.expanduser(prefix))
    separator = "/" if bucket else os.sep
    glob = [i for i in (prefix.find(c) for c in "*?[") if i >= 0]
    if glob:  # a glob: the directory (or key prefix) before its first wildcard
        prefix = prefix[: prefix.rfind(separator, 0, min(glob)) + 1]
    elif not bucket and os.path.isdir(prefix) and not prefix.endswith(os.sep):
        prefix += os.sep
    return bucket, prefix


def checkpoint_key(file: ProcessedFile) -> str:
    return f"ingest:{file.bucket}/{file.key}@{file.version}"


def check_stale_after(stale_after_s: float) -> None:
    if stale_after_s < MIN_STALE_AFTER_S:
        raise StaleAfterTooShortError(
            f"stale-after {stale_after_s:g} s is too short: a run says it is alive every"
            f" {HEARTBEAT_S:g} s, so a file would be taken from a run still reading it;"
            f" use at least {MIN_STALE_AFTER_S:g} s"
        )


def first_log_time(source: Source, file: SourceFile, fields: EventFields) -> float | None:
    """The time (Unix seconds) of the first record of `file` that has one, from its first
    bytes; None if none of its first records says (or it cannot be read: its run says why)."""
    paths = (*fields.time, *(p for p in _ORDER_FIELDS if p not in fields.time))
    try:
        with source.open(file) as raw:
            reader = LineReader(raw, file=file.url, chunk_bytes=64 << 10)
            for seen, item in enumerate(reader):
                if seen >= _PEEK_RECORDS:
                    break
                data = getattr(item, "data", None)
                if data is None:
                    continue
                try:
                    event = orjson.loads(data)
                except orjson.JSONDecodeError:
                    continue
                for path in paths:
                    moment = parse_event_time(lookup(event, path))
                    if moment is not None:
                        return moment.timestamp()
    except Exception as exc:  # the run that reads it reports the reason
        log.warning("cannot read the first log time", extra={"file": file.url, "error": str(exc)})
    return None


def record_source(
    store: ReprocessingStore, config: ReprocessingConfig
) -> tuple[ReprocessingConfig, dict[Scope, SourceFile]]:
    """List the source, record the versions not seen before (with their order time); returns
    the config (with what the listing left out) and the listed files by (bucket, key)."""
    config, files = list_source(config)
    scope = scope_of(config.source)
    known = store.processed_versions(scope)
    new = [(identity(f), f) for f in files if identity(f) not in known]
    if new:
        source, fields = source_for(config), event_fields(config)
        store.processed_record(
            [(*ident, f.size, first_log_time(source, f, fields) or f.modified) for ident, f in new]
        )
    return config, {split_location(f.url): f for f in files}


@dataclass
class IngestResult:
    """What one run did: its job (None when nothing was claimable) and each file's outcome."""

    job: ReprocessingJob | None = None
    outcomes: dict[str, int] = field(default_factory=dict)
    files: list[ProcessedFile] = field(default_factory=list)
    stopped: bool = False  # by a signal, in the middle of a file
    listed: set[tuple[str, str, str]] = field(default_factory=set)  # versions in the source

    def failed_in_source(self, store: ReprocessingStore, source: str) -> list[ProcessedFile]:
        """The FAILED files of the source still in it as they were (a file deleted or
        replaced by a newer version since is not the source's failure)."""
        return [
            f for f in failed_files(store, source) if (f.bucket, f.key, f.version) in self.listed
        ]


#: Reads the files of a job that are pending, in this process (a `ReprocessWorker`'s run).
RunFiles = Callable[[str], None]


class Heartbeat:
    """Touches a job's PROCESSING files every `HEARTBEAT_S` from a thread, so that other runs
    do not take them while this one reads them (a run paused past `stale_after_s` loses them;
    the sink's claim then keeps it from committing more)."""

    def __init__(self, database_url: str, job_id: str, every_s: float = HEARTBEAT_S) -> None:
        self._url, self._job_id, self._every = database_url, job_id, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ingest-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with ReprocessingStore(self._url) as store:
            while not self._stop.wait(self._every):
                try:
                    store.processed_touch(self._job_id)
                except Exception as exc:  # the next beat tries again
                    log.warning(
                        "heartbeat failed", extra={"job_id": self._job_id, "error": str(exc)}
                    )


def ingest_files(
    app: App,
    store: ReprocessingStore,
    config: ReprocessingConfig,
    run_files: RunFiles,
    *,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    stale_after_s: float = DEFAULT_STALE_AFTER_S,
    max_files: int | None = None,
    on_file: Callable[[ProcessedFile, IngestStatus], None] | None = None,
) -> IngestResult:
    """One run: record what is new, then claim, read and settle one file at a time until
    none is left to claim (or `max_files` were taken)."""
    check_stale_after(stale_after_s)
    check_config(config)
    check_sink(config.sink)
    app.store.migrate()
    config, listed = record_source(store, config)
    scope = scope_of(config.source)
    result = IngestResult(listed={identity(f) for f in listed.values()})
    job_id = new_job_id()
    while max_files is None or len(result.files) < max_files:
        claimed = store.processed_claim_next(
            scope, job_id, max_attempts=max_attempts, stale_after_s=stale_after_s
        )
        if claimed is None:
            break
        result.files.append(claimed)
        file = listed.get((claimed.bucket, claimed.key))
        if file is None or identity(file) != (claimed.bucket, claimed.key, claimed.version):
            status = _settle(store, claimed, ReprocessingStatus.FAILED, "no longer in the source")
        else:
            try:
                status = _read_one(app, store, config, job_id, claimed, file, run_files, result)
            except IngestStoppedError:
                result.stopped = True
                result.outcomes[IngestStatus.FAILED] = (
                    result.outcomes.get(IngestStatus.FAILED, 0) + 1
                )
                break
        result.outcomes[status] = result.outcomes.get(status, 0) + 1
        if on_file is not None:
            on_file(claimed, status)
    if result.job is not None:
        result.job = store.job(job_id)
    return result


def check_sink(sink: str) -> None:
    """The sink, once, before any file is claimed: a broker that is not there, or a table
    the PostgreSQL sink refuses (an operator's own ``log`` table with a column nothing fills),
    would otherwise fail every file, each after its attempts, and leave them all to reset."""
    spec = parse_sink_url(sink)
    check_reachable(spec)
    if spec.kind is SinkKind.POSTGRESQL:
        open_sink(spec).close()  # opening prepares the table, or refuses it saying why


def _read_one(
    app: App,
    store: ReprocessingStore,
    config: ReprocessingConfig,
    job_id: str,
    claimed: ProcessedFile,
    file: SourceFile,
    run_files: RunFiles,
    result: IngestResult,
) -> IngestStatus:
    key = checkpoint_key(claimed)
    if result.job is None:
        store.job_create(job_id, config, [file], 1, [key])
        result.job = store.job(job_id)
        index = 0
    else:
        index = store.processed_job_add(job_id, file, key)
    # One attempt in this run: a file that fails is retried by a later run (`max_attempts`).
    app.enqueue_many(
        [
            JobSpec(
                REPROCESS_TASK,
                {"job_id": job_id, "file_index": index},
                queue=job_queue(job_id),
                run_at=datetime.now(UTC) - timedelta(seconds=1),
                max_attempts=1,
            )
        ]
    )
    crash: str | None = None
    with Heartbeat(store.url, job_id):
        try:
            run_files(job_id)
        except Exception as exc:  # the worker itself broke (its database...): stop here
            crash = f"{type(exc).__name__}: {exc}"
        record = store.file(job_id, index)
    if record.status is ReprocessingStatus.COMPLETED:
        return _settle(store, claimed, ReprocessingStatus.COMPLETED, None)
    if record.status is ReprocessingStatus.FAILED and crash is None:
        return _settle(store, claimed, ReprocessingStatus.FAILED, record.error or "failed")
    # Not finished: the run was stopped (SIGTERM, Ctrl-C) or its worker broke while reading
    # it. The next run resumes it from its checkpoint; this one takes no other file.
    reason = crash or STOPPED
    _settle(store, claimed, ReprocessingStatus.FAILED, reason)
    raise IngestStoppedError(f"stopped while reading {file.url}: {reason}")


def _settle(
    store: ReprocessingStore, claimed: ProcessedFile, status: ReprocessingStatus, error: str | None
) -> IngestStatus:
    outcome = (
        IngestStatus.COMPLETED if status is ReprocessingStatus.COMPLETED else IngestStatus.FAILED
    )
    store.processed_finish(claimed, outcome, error)
    return outcome


def failed_files(store: ReprocessingStore, source: str | None) -> list[ProcessedFile]:
    """The FAILED files of a source's part of the record (None: of every source)."""
    return store.processed_by_status(
        IngestStatus.FAILED, scope_of(source) if source is not None else None
    )
