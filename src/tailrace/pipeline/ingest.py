"""Incremental ingestion: each run takes the files of a source it has not completed before.

The record (`tailrace_processed_files`) holds one row per version of a file: bucket, key and
ETag (S3) or size (local files). A run, under a lock that serialises overlapping runs,
records what is new as PENDING and claims, oldest first, what is PENDING, FAILED with
attempts left, or PROCESSING under a run that stopped saying it is alive. The claimed files
become one reprocessing job, in chronological order; a file's sink checkpoint is keyed by
its version (and, in PostgreSQL, by the target table), so a retried file resumes where the
last run stopped. A new version of a file (re-uploaded, fixed) is loaded again: the
PostgreSQL sink stores only its records not stored before, and counts the others as skipped
duplicates. A file's outcome in the record is its reprocessing file status: COMPLETED only
when its job's file is, else FAILED with the file's error.

A run touches its files every `HEARTBEAT_S`; another run takes a PROCESSING file only after
`stale_after_s` without a touch, which must be at least `MIN_STALE_AFTER_S`. Should it take a
file still being read anyway (a run paused longer than that), the PostgreSQL sink's claim
stops the first run's worker from committing anything more for that file.
"""

from __future__ import annotations

from dataclasses import dataclass

from tailrace.engine.app import App
from tailrace.pipeline.jobs import JobConfig, JobRecord, JobStore
from tailrace.pipeline.jobs.model import FileStatus, IngestStatus, ProcessedFile
from tailrace.pipeline.plan import check_config, create_job, list_source, new_job_id
from tailrace.pipeline.sources import SourceFile

DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_STALE_AFTER_S = 600.0
# A live run says so this often (`processed_touch`); a file counts as left by a dead run only
# after several of those were missed, or a run still reading it would lose it to another.
HEARTBEAT_S = 10.0
MIN_STALE_AFTER_S = 6 * HEARTBEAT_S


class StaleAfterTooShortError(ValueError):
    """`stale_after_s` below `MIN_STALE_AFTER_S`: live runs' files would be taken again."""


@dataclass(frozen=True, slots=True)
class IngestRun:
    """What one run took on: its job (None when nothing was new) and the claimed files."""

    job: JobRecord | None
    claimed: tuple[ProcessedFile, ...]


def identity(file: SourceFile) -> tuple[str, str, str]:
    """(bucket, key, version) of a listed file; local files have an empty bucket."""
    if file.url.startswith("s3://"):
        bucket, _, key = file.url[5:].partition("/")
    else:
        bucket, key = "", file.url
    return bucket, key, file.etag or f"size:{file.size}"


def checkpoint_key(file: ProcessedFile) -> str:
    return f"ingest:{file.bucket}/{file.key}@{file.version}"


def check_stale_after(stale_after_s: float) -> None:
    if stale_after_s < MIN_STALE_AFTER_S:
        raise StaleAfterTooShortError(
            f"stale-after {stale_after_s:g} s is too short: a run says it is alive every"
            f" {HEARTBEAT_S:g} s, so a file would be taken from a run still reading it;"
            f" use at least {MIN_STALE_AFTER_S:g} s"
        )


def start_ingest(
    app: App,
    store: JobStore,
    config: JobConfig,
    *,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    stale_after_s: float = DEFAULT_STALE_AFTER_S,
    limit: int = 10_000,
) -> IngestRun:
    """Claim this run's files and plan their job (not started yet)."""
    check_stale_after(stale_after_s)
    check_config(config)
    app.store.migrate()
    config, files_listed = list_source(config)  # records what the listing left out
    listed = {identity(f): f for f in files_listed}
    job_id = new_job_id()
    claimed = store.processed_claim(
        [(*ident, f) for ident, f in listed.items()],
        job_id,
        max_attempts=max_attempts,
        stale_after_s=stale_after_s,
        limit=limit,
    )
    present = [c for c in claimed if (c.bucket, c.key, c.version) in listed]
    for gone in claimed:
        if gone not in present:
            store.processed_finish(gone, IngestStatus.FAILED, "no longer in the source")
    if not present:
        return IngestRun(None, ())
    files = [listed[(c.bucket, c.key, c.version)] for c in present]
    job = create_job(
        app,
        store,
        config,
        files,
        job_id=job_id,
        checkpoint_keys=[checkpoint_key(c) for c in present],
        largest_first=False,
    )
    return IngestRun(job, tuple(present))


def finish_ingest(store: JobStore, run: IngestRun) -> dict[str, int]:
    """Record each claimed file's outcome from its job; returns counts by outcome."""
    if run.job is None:
        return {}
    outcome: dict[str, int] = {}
    records = store.files(run.job.id)
    for claimed, record in zip(run.claimed, records, strict=True):
        if record.status is FileStatus.COMPLETED:
            store.processed_finish(claimed, IngestStatus.COMPLETED)
            status = IngestStatus.COMPLETED
        else:
            store.processed_finish(claimed, IngestStatus.FAILED, record.error or record.status)
            status = IngestStatus.FAILED
        outcome[status] = outcome.get(status, 0) + 1
    return outcome
