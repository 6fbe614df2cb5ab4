"""Planning a reprocessing job: list the files, pick a worker count, store the job and
enqueue one engine task per file, largest first, so that uneven files still balance.

Also the operations on a planned job that touch both the job's rows and its engine tasks:
cancel and resume.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from tailrace.engine.app import App, JobSpec
from tailrace.engine.jobs import JobFilter
from tailrace.engine.states import JobState
from tailrace.errors import ConfigurationError, ConflictError
from tailrace.pipeline.events import EventFields
from tailrace.pipeline.filters import EventFilter, parse_time_bound
from tailrace.pipeline.jobs import JobConfig, JobRecord, JobStatus, JobStore
from tailrace.pipeline.sinks import parse_sink_url
from tailrace.pipeline.sinks.reach import check_reachable
from tailrace.pipeline.sources import Source, SourceFile, open_source
from tailrace.pipeline.sources.select import SkippedFiles

REPROCESS_TASK = "tailrace.reprocess_file"
FILES_PER_WORKER = 10
BYTES_PER_WORKER = 1 << 30
# a worker reads a few MiB in well under a second, about what starting one costs: below
# that per worker, another process costs more than it saves
MIN_BYTES_PER_WORKER = 4 << 20
MAX_WORKERS = 50
FILE_ATTEMPTS = 5


def job_queue(job_id: str) -> str:
    """The engine queue holding one job's file tasks: its workers claim only from it."""
    return f"reprocess:{job_id}"


def worker_count(files: Sequence[SourceFile], limit: int | None = None) -> int:
    """One worker per 10 files or per GiB, whichever asks more, but never more than one per
    `MIN_BYTES_PER_WORKER` (4 MiB) of data: a worker process costs tens of MB of memory and
    its start-up, so 50,000 files of 100 bytes get one worker, not 50. At most 50, at most `limit`,
    at most one per file, at least one."""
    total = sum(f.size for f in files)
    by_files = math.ceil(len(files) / FILES_PER_WORKER)
    by_bytes = math.ceil(total / BYTES_PER_WORKER)
    worth = max(1, total // MIN_BYTES_PER_WORKER)  # workers the data is worth
    wanted = min(max(by_files, by_bytes, 1), worth, MAX_WORKERS, len(files) or 1)
    return max(1, min(wanted, limit)) if limit else wanted


def check_config(config: JobConfig) -> EventFilter:
    """Fail before anything is stored if the sink, the fields or the filters cannot be
    understood."""
    parse_sink_url(config.sink)
    event_fields(config)
    return event_filter(config)


def event_fields(config: JobConfig) -> EventFields:
    return EventFields.from_strings(
        stream_id=config.stream_id_fields or None,
        time=config.time_fields or None,
        message_id=config.message_id_fields or None,
    )


def event_filter(config: JobConfig) -> EventFilter:
    return EventFilter(
        stream_ids=config.stream_ids or None,
        date_from=parse_time_bound(config.date_from) if config.date_from else None,
        date_to=parse_time_bound(config.date_to) if config.date_to else None,
        where=config.where,
    )


def source_for(config: JobConfig) -> Source:
    """The job's source, with its file selection and (local files) its roots."""
    options: dict[str, Any] = {"include": config.include, "exclude": config.exclude}
    if config.source[:5].lower() == "s3://":
        if config.s3_endpoint_url:
            options["endpoint_url"] = config.s3_endpoint_url
    else:
        options["roots"] = config.roots
    return open_source(config.source, **options)


def list_source(config: JobConfig) -> tuple[JobConfig, list[SourceFile]]:
    """The files to read, and the config with what the listing left out recorded in it
    (counts by reason and a few names, shown in the job's summary)."""
    source = source_for(config)
    files = source.list_files()
    skipped = getattr(source, "skipped", None)
    if isinstance(skipped, SkippedFiles) and skipped.total:
        config = replace(config, listing_skipped=skipped.to_json())
    return config, files


def new_job_id() -> str:
    return uuid.uuid4().hex[:12]


def plan_job(
    app: App, store: JobStore, config: JobConfig, *, job_id: str | None = None
) -> JobRecord:
    """Store a new job for every file of `config`'s source; returns the job. A sink whose
    server cannot be reached fails it here, before anything is stored."""
    check_config(config)
    config, files = list_source(config)
    if not files:
        skipped = SkippedFiles(**config.listing_skipped) if config.listing_skipped else None
        detail = f" to read ({'; '.join(skipped.describe())})" if skipped else ""
        raise ConfigurationError(f"no files found at {config.source}{detail}")
    check_reachable(parse_sink_url(config.sink))
    return create_job(app, store, config, files, job_id=job_id)


def create_job(
    app: App,
    store: JobStore,
    config: JobConfig,
    files: Sequence[SourceFile],
    *,
    job_id: str | None = None,
    checkpoint_keys: Sequence[str | None] | None = None,
    largest_first: bool = True,
) -> JobRecord:
    """Store a job for `files` and enqueue one task per file: largest first, or in the
    order given (ingestion goes in chronological order)."""
    job_id = job_id or new_job_id()
    # The job tables come with the engine's migrations. An App opened without auto_migrate
    # has an owner that ran them (the admin service, at start); migrating again here made
    # each job start wait for the lock that every starting worker takes to migrate.
    if app.auto_migrate:
        app.store.migrate()
    workers = worker_count(files, config.max_workers)
    store.job_create(job_id, config, files, workers, checkpoint_keys)
    _enqueue(app, job_id, [(i, f.size) for i, f in enumerate(files)], largest_first)
    return store.job(job_id)


def _enqueue(
    app: App, job_id: str, files: Sequence[tuple[int, int]], largest_first: bool = True
) -> None:
    # Claims go by run time, then id: stepping run times back a millisecond per rank makes
    # the first-ranked file the first claimed whatever order the ids come in.
    ranked = sorted(files, key=lambda item: -item[1]) if largest_first else list(files)
    start = datetime.now(UTC) - timedelta(milliseconds=len(ranked))
    app.enqueue_many(
        JobSpec(
            REPROCESS_TASK,
            {"job_id": job_id, "file_index": index},
            queue=job_queue(job_id),
            run_at=start + timedelta(milliseconds=rank),
            max_attempts=FILE_ATTEMPTS,
        )
        for rank, (index, _size) in enumerate(ranked)
    )


def cancel_job(app: App, store: JobStore, job_id: str) -> JobRecord:
    """Stop a job: pending files are cancelled at once, running ones at their workers' next
    heartbeat, which checkpoint first. Counters stay as they are."""
    job = store.job(job_id)
    if job.status.finished:
        return job
    store.job_set_status(job_id, JobStatus.CANCELLED)
    store.files_cancel_pending(job_id)
    _cancel_tasks(app, job_id)
    return store.job(job_id)


def _cancel_tasks(app: App, job_id: str) -> None:
    """Cancel the job's unfinished engine tasks (a running one at its worker's heartbeat,
    or when its lease expires if that worker is gone)."""
    queue = job_queue(job_id)
    for state in (JobState.PENDING, JobState.FAILED, JobState.RUNNING):
        for engine_job in app.jobs(JobFilter(state=state, queue=queue), limit=100_000):
            app.cancel(engine_job.id)


def resume_job(app: App, store: JobStore, job_id: str) -> JobRecord:
    """Run a cancelled or failed job again: every unfinished file from its checkpoint."""
    job = store.job(job_id)
    if job.status is JobStatus.COMPLETED:
        raise ConflictError(f"job {job_id} is completed: nothing to resume")
    if job.status in (JobStatus.PENDING, JobStatus.RUNNING) or not store.job_reset(job_id):
        status = store.job_status(job_id)
        raise ConflictError(f"job {job_id} is {status}: only a cancelled or failed job resumes")
    # tasks a failed job left behind (released by workers that stopped) would run a file
    # beside its new task
    _cancel_tasks(app, job_id)
    reopened = store.job_reopen(job_id)
    _enqueue(app, job_id, reopened)
    return store.job(job_id)


def settle_job(
    store: JobStore, job_id: str, reason: str = "every worker process exited"
) -> JobRecord:
    """Give a job whose workers have all exited its final status, from its files: if files
    are left (the workers crashed more often than the executor restarts them, or were
    stopped), it failed for `reason`, and can be resumed."""
    status = store.job_finalize(job_id)
    if status in (JobStatus.RUNNING, JobStatus.PENDING):
        store.job_set_status(job_id, JobStatus.FAILED, reason)
    return store.job(job_id)
