"""Planning a reprocessing job: list the files, pick a worker count, store the job and
enqueue one engine task per file, largest first, so that uneven files still balance.

Starting, cancelling, resuming and settling a planned job is `pipeline/jobs/service.py`,
which uses the task helpers here (`enqueue_files`, `cancel_tasks`).
"""

from __future__ import annotations

import math
import os
import posixpath
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import msgspec

from tailrace.engine.app import App, JobSpec
from tailrace.engine.jobs import JobFilter
from tailrace.engine.states import JobState
from tailrace.errors import ConfigurationError
from tailrace.pipeline.jobs import ReprocessingConfig, ReprocessingJob, ReprocessingStore
from tailrace.pipeline.jobs.model import MAX_WORKERS
from tailrace.pipeline.runtime import check_config, source_for
from tailrace.pipeline.sinks import parse_sink_url
from tailrace.pipeline.sinks.reach import check_reachable
from tailrace.pipeline.sources import SourceFile, open_source
from tailrace.pipeline.sources.select import SkippedFiles

REPROCESS_TASK = "tailrace.reprocess_file"
FILES_PER_WORKER = 10
BYTES_PER_WORKER = 1 << 30
# a worker reads a few MiB in well under a second, about what starting one costs: below
# that per worker, another process costs more than it saves
MIN_BYTES_PER_WORKER = 4 << 20
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


def list_source(config: ReprocessingConfig) -> tuple[ReprocessingConfig, list[SourceFile]]:
    """The files to read, and the config with what the listing left out recorded in it
    (counts by reason and a few names, shown in the job's summary)."""
    source = source_for(config)
    files = source.list_files()
    skipped = getattr(source, "skipped", None)
    if isinstance(skipped, SkippedFiles) and skipped.total:
        config = msgspec.structs.replace(config, listing_skipped=skipped.to_json())
    return config, files


def listed_files(
    entries: Sequence[tuple[str, int | None]], s3_endpoint_url: str | None = None
) -> tuple[str, list[SourceFile]]:
    """Jitsu's ``files``: exactly these files, sorted. Returns the source they share (one
    S3 bucket, or the local directory above them all) and the files with their sizes,
    looked up where they are not given."""
    if not entries:
        raise ConfigurationError("files: the list is empty")
    urls = [url for url, _ in entries]
    remote = [u for u in urls if u[:5].lower() == "s3://"]
    if remote and len(remote) != len(urls):
        raise ConfigurationError("files: give all s3:// URLs or all local paths, not a mix")
    if remote:
        buckets = {u[5:].split("/", 1)[0] for u in remote}
        if len(buckets) > 1:
            raise ConfigurationError(f"files: all must be in one bucket, not {sorted(buckets)}")
        source = f"s3://{buckets.pop()}/"
    else:
        entries = [(os.path.abspath(url), size) for url, size in entries]
        source = os.path.commonpath([os.path.dirname(url) for url, _ in entries])
    files = []
    for url, size in entries:
        if size is None:
            options = {"endpoint_url": s3_endpoint_url} if remote and s3_endpoint_url else {}
            found = [f for f in open_source(url, **options).list_files() if f.url == url]
            if not found:
                raise ConfigurationError(f"files: no such file: {url}")
            files.append(found[0])
        else:
            files.append(SourceFile(url, size))
    return source, sorted(files, key=lambda f: f.url)


def start_from(files: Sequence[SourceFile], start_file: str) -> list[SourceFile]:
    """The files from `start_file` on (Jitsu's start_file: a name, a path or a URL)."""
    for index, file in enumerate(files):
        if start_file in (file.url, posixpath.basename(file.url)):
            return list(files[index:])
    raise ConfigurationError(
        f"start_file {start_file!r} is not among the {len(files)} files listed "
        "(give its name, path or URL)"
    )


def new_job_id() -> str:
    return uuid.uuid4().hex[:12]


def plan_job(
    app: App, store: ReprocessingStore, config: ReprocessingConfig, *, job_id: str | None = None
) -> ReprocessingJob:
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
    store: ReprocessingStore,
    config: ReprocessingConfig,
    files: Sequence[SourceFile],
    *,
    job_id: str | None = None,
    checkpoint_keys: Sequence[str | None] | None = None,
    largest_first: bool = True,
    workers: int | None = None,
) -> ReprocessingJob:
    """Store a job for `files` and enqueue one task per file: largest first, or in the
    order given (ingestion goes in chronological order). `workers`: how many were started
    already (reference 001's pods), instead of the count planning picks."""
    job_id = job_id or new_job_id()
    # The job tables come with the engine's migrations. An App opened without auto_migrate
    # has an owner that ran them (the admin service, at start); migrating again here made
    # each job start wait for the lock that every starting worker takes to migrate.
    if app.auto_migrate:
        app.store.migrate()
    # a limit is counted by one worker, exactly (Jitsu's admin ran one process too)
    if workers is None:
        workers = 1 if config.limit else worker_count(files, config.max_workers)
    store.job_create(job_id, config, files, workers, checkpoint_keys)
    attempts = config.retry_attempts or FILE_ATTEMPTS
    enqueue_files(app, job_id, [(i, f.size) for i, f in enumerate(files)], largest_first, attempts)
    return store.job(job_id)


def enqueue_files(
    app: App,
    job_id: str,
    files: Sequence[tuple[int, int]],
    largest_first: bool = True,
    attempts: int = FILE_ATTEMPTS,
) -> None:
    """Enqueue one engine task per (file index, size) on the job's queue: largest first,
    or in the order given."""
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
            max_attempts=attempts,
        )
        for rank, (index, _size) in enumerate(ranked)
    )


def cancel_tasks(app: App, job_id: str) -> None:
    """Cancel the job's unfinished engine tasks (a running one at its worker's heartbeat,
    or when its lease expires if that worker is gone)."""
    queue = job_queue(job_id)
    for state in (JobState.PENDING, JobState.FAILED, JobState.RUNNING):
        for engine_job in app.jobs(JobFilter(state=state, queue=queue), limit=100_000):
            app.cancel(engine_job.id)
