"""Reprocessing jobs: the endpoints of reference 000, with their paths and JSON shapes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel

from ...engine.app import App
from ...errors import ConfigurationError
from ...executors.logs import merge_by_time
from ...pipeline.filters import is_zero_time
from ...pipeline.jobs import (
    ReprocessingConfig,
    ReprocessingJob,
    ReprocessingStatus,
    ReprocessingStore,
)
from ...pipeline.jobs.service import LaunchFailed, ReprocessingService
from ...pipeline.plan import list_source, listed_files, new_job_id, start_from
from ...pipeline.runtime import check_config
from ...pipeline.sinks.url import sink_has_credentials
from ...pipeline.sources import SourceFile
from .. import admission
from ..deadletters import read_deadletters
from ..errors import ApiError
from ..present import file_out, job_out, worker_out
from ..schemas import (
    DeadLettersOut,
    ErrorBody,
    FilesOut,
    JobOut,
    JobPage,
    LogLineOut,
    LogsByTime,
    LogsByWorker,
    StartJob,
    WorkerLogOut,
    WorkersOut,
    error_responses,
)
from ..services import Services, Svc, authenticated

router = APIRouter(
    prefix="/api/admin/reprocessing",
    tags=["reprocessing"],
    dependencies=[Depends(authenticated)],
    responses=error_responses(400, 401, 404, 403, 422, 502, 503),
)


@router.post("/jobs", status_code=201, response_model=JobOut)
def start_job(body: StartJob, svc: Svc) -> JobOut:
    """Plan a job on the files at `s3_path` or `path` and start its workers."""
    cfg = svc.config
    if body.path is not None and body.local_path is not None:
        raise ApiError(422, "invalid_request", "give path or local_path (its Jitsu name), not both")
    path = body.path if body.path is not None else body.local_path
    given = [x for x in (body.s3_path, path) if x is not None]
    if body.files and given:
        raise ApiError(422, "invalid_request", "give files, or s3_path or path, not both")
    if not body.files and len(given) != 1:
        raise ApiError(
            422, "invalid_request", "give exactly one of s3_path and path (or local_path), or files"
        )
    if body.s3_path is not None and not body.s3_path.lower().startswith("s3://"):
        raise ApiError(422, "invalid_request", "s3_path must start with s3://")
    listed: list[SourceFile] | None = None
    if body.files:
        entries = [(f, None) if isinstance(f, str) else (f.path, f.size) for f in body.files]
        for url, _ in entries:  # before a file is looked at: none outside the roots
            if url[:5].lower() != "s3://":
                admission.check_local_source(cfg, url)
        try:
            source, listed = listed_files(entries, body.s3_endpoint_url)
        except ConfigurationError as exc:
            raise ApiError(422, "invalid_request", str(exc)) from None
        local = not source.startswith("s3://")
    else:
        source = body.s3_path or path or ""
        local = path is not None
    if local:
        admission.check_local_source(cfg, source)
    admission.check_endpoint(cfg, body.s3_endpoint_url)
    date_from, date_to = _utc(body.date_from), _utc(body.date_to)
    if date_from and date_to and date_from > date_to:
        raise ApiError(422, "invalid_request", "date_from is after date_to")
    job_id = new_job_id()
    if not (body.sink or svc.config.default_sink or body.dry_run) and cfg.executor != "local":
        raise ApiError(
            422,
            "invalid_request",
            "no sink: name one, or set TAILRACE_DEFAULT_SINK (or KAFKA_BOOTSTRAP_SERVERS) on "
            "the service; a file in the service's own directory is out of the pods' reach",
        )
    if body.dry_run:
        sink = "null:"  # plans, reads and counts; sends nothing
    else:
        sink = body.sink or svc.config.default_sink or _default_file_sink(svc, job_id)
    if sink_has_credentials(sink):
        raise ApiError(
            422,
            "credentials_in_sink",
            "the sink URL holds a password: jobs keep no credentials. Put the URL in the "
            "service's environment as TAILRACE_SINK_<NAME> and send sink '@<name>'",
        )
    admission.check_sink(cfg, sink)
    config = ReprocessingConfig(
        source=source,
        sink=sink,
        stream_ids=tuple(body.stream_ids),
        connection_ids=tuple(body.connection_ids),
        date_from=date_from.isoformat() if date_from else None,
        date_to=date_to.isoformat() if date_to else None,
        where=tuple(body.where),
        max_workers=body.max_concurrency or body.max_workers,
        batch_size=body.batch_size,
        s3_endpoint_url=body.s3_endpoint_url,
        roots=admission.job_roots(cfg),
        write_roots=admission.job_write_roots(cfg),
        include=tuple(body.include),
        exclude=tuple(body.exclude),
        dry_run=body.dry_run,
        start_file=body.start_file,
        start_line=body.start_line,
        limit=body.limit or None,
        retry_attempts=body.retry_attempts,
    )
    check_config(config)
    # listed before a database connection is taken: a large prefix can take a while
    if listed is None:
        config, files = list_source(config)
    else:
        files = listed
    if files and body.start_file:
        try:
            files = start_from(files, body.start_file)
        except ConfigurationError as exc:
            raise ApiError(422, "invalid_request", str(exc)) from None
    if not files:
        skipped = config.listing_skipped.get("counts")
        detail = f" to read (skipped: {skipped})" if skipped else ""
        raise ApiError(422, "invalid_request", f"no files found at {source}{detail}")
    if local:
        admission.check_local_files(cfg, files)
    with svc.db() as db, _launch_failed(svc):
        job = _service(svc, db.app, db.store).start(config, files, job_id=job_id)
        # as launched: total_workers, and on Kubernetes k8s_job_name, in the reply itself
        return job_out(job)


def _service(svc: Services, app: App, store: ReprocessingStore) -> ReprocessingService:
    """The job operations on this request's database handle, with the service's executor."""
    return ReprocessingService(app, store, svc.executor)


@contextmanager
def _launch_failed(svc: Services) -> Iterator[None]:
    """Workers that could not be started: the job is failed already (resumable); 502."""
    try:
        yield
    except LaunchFailed as exc:
        svc.recent.forget(f"job:{exc.job_id}", f"workers:{exc.job_id}")
        raise ApiError(502, "executor_failed", str(exc)) from exc


def _utc(moment: datetime | None) -> datetime | None:
    """A time without a zone is taken as UTC, the zone of the logs; Go's zero time (what
    Jitsu's Go clients send for no date) means unset."""
    if is_zero_time(moment):
        return None
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


def _default_file_sink(svc: Services, job_id: str) -> str:
    """With no sink configured anywhere: a file of the job's own in the data directory."""
    directory = (svc.config.data_dir / "out").resolve()
    directory.mkdir(parents=True, exist_ok=True)
    return (directory / f"{job_id}.ndjson").as_uri()


@router.get("/jobs", response_model=JobPage)
def list_jobs(
    svc: Svc,
    status: Literal["pending", "running", "completed", "failed", "cancelled"] | None = None,
    limit: int = Query(20, ge=1, le=100),
    offset: int = Query(0, ge=0, le=1_000_000),
) -> JobPage:
    """The newest jobs first, optionally only those in one status."""
    with svc.db() as db:
        jobs, total = db.store.jobs_page(
            ReprocessingStatus(status) if status else None, limit, offset
        )
        shown = [_job_out(db.store, job) for job in jobs]
    return JobPage(jobs=shown, total=total, limit=limit, offset=offset)


@router.get("/jobs/{job_id}", response_model=JobOut)
async def get_job(svc: Svc, job_id: str) -> Response:
    """A job with its counters aggregated over its files and workers; shared between
    requests for TAILRACE_API_STATUS_TTL_MS."""

    def load() -> bytes:
        with svc.db() as db:
            return _json(_job_out(db.store, db.store.job(job_id)))

    return _raw(await svc.recent.get(f"job:{job_id}", load))


@router.get("/jobs/{job_id}/workers", response_model=WorkersOut)
async def get_workers(svc: Svc, job_id: str) -> Response:
    """Each worker's status row, with the columns of Jitsu's reprocessing_workers; shared
    between requests for TAILRACE_API_STATUS_TTL_MS."""

    def load() -> bytes:
        with svc.db() as db:
            db.store.job_status(job_id)  # 404 for an unknown job, not an empty list
            workers = db.store.workers(job_id)
        return _json(WorkersOut(job_id=job_id, workers=[worker_out(w) for w in workers]))

    return _raw(await svc.recent.get(f"workers:{job_id}", load))


@router.get("/jobs/{job_id}/files", response_model=FilesOut)
def get_files(
    svc: Svc,
    job_id: str,
    status: Literal["pending", "running", "completed", "failed", "cancelled"] | None = None,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=10_000_000),
) -> FilesOut:
    """Each file of the job with its status, counters and, for one that failed, why; in
    file order, optionally only those in one status."""
    with svc.db() as db:
        db.store.job_status(job_id)  # 404 for an unknown job, not an empty list
        files = db.store.files(job_id)
    if status is not None:
        files = [f for f in files if f.status == status]
    shown = [file_out(f) for f in files[offset : offset + limit]]
    return FilesOut(job_id=job_id, files=shown, total=len(files), limit=limit, offset=offset)


def _job_out(store: ReprocessingStore, job: ReprocessingJob) -> JobOut:
    """A job as shown: live counters while it runs, and whether its workers are gone."""
    if job.status.finished:
        return job_out(job)
    abandoned = store.job_abandoned(job.id) if job.status is ReprocessingStatus.RUNNING else None
    return job_out(job, store.workers(job.id), abandoned)


def _json(body: BaseModel) -> bytes:
    return body.model_dump_json().encode()


def _raw(body: bytes) -> Response:
    # the response model already, serialised once and shared: sent as is
    return Response(body, media_type="application/json")


@router.post("/jobs/{job_id}/cancel", response_model=JobOut)
def cancel(job_id: str, svc: Svc) -> JobOut:
    """Stop a job: its workers checkpoint and exit; the counters stay."""
    with svc.db() as db:
        job = _service(svc, db.app, db.store).cancel(job_id)
    svc.recent.forget(f"job:{job_id}", f"workers:{job_id}")
    return job_out(job)


@router.post("/jobs/{job_id}/resume", response_model=JobOut, responses={409: {"model": ErrorBody}})
def resume(job_id: str, svc: Svc) -> JobOut:
    """Run a cancelled or failed job again, each file from its checkpoint; also a running
    job whose workers are gone (none reports, no live lease: their process was killed)."""
    with svc.db() as db, _launch_failed(svc):
        job = _service(svc, db.app, db.store).resume(job_id)
    svc.recent.forget(f"job:{job_id}", f"workers:{job_id}")
    return job_out(job)


@router.get("/jobs/{job_id}/logs", response_model=LogsByWorker | LogsByTime)
def logs(
    svc: Svc,
    job_id: str,
    tail: int | None = Query(None, ge=1, le=10_000, description="Last N lines (default 50)"),
    since: float | None = Query(None, gt=0, le=30 * 86400, description="Last N seconds"),
    sort: bool = Query(False, description="One list sorted by time across workers"),
) -> LogsByWorker | LogsByTime:
    """The workers' log lines: per worker, or chronological with worker indexes."""
    with svc.db() as db:
        db.store.job_status(job_id)
    if tail is None and since is None:
        tail = 50
    found = svc.executor.logs(job_id, tail, since)
    if sort:
        lines = merge_by_time(found, tail)
        return LogsByTime(
            job_id=job_id,
            sorted=True,
            lines=[
                LogLineOut(
                    timestamp=line.timestamp,
                    worker_index=line.worker_index,
                    pod_name=line.pod_name,
                    message=line.message,
                    level=line.level,
                )
                for line in lines
            ],
        )
    return LogsByWorker(
        job_id=job_id,
        sorted=False,
        logs=[
            WorkerLogOut(
                worker_index=log.worker_index,
                pod_name=log.pod_name,
                lines=[f"{line.timestamp} {line.message}" for line in log.lines],
                error=log.error or None,
            )
            for log in found
        ],
    )


@router.get("/jobs/{job_id}/deadletters", response_model=DeadLettersOut)
def deadletters(
    svc: Svc,
    job_id: str,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=10_000_000),
) -> DeadLettersOut:
    """The job's bad lines, with file, line and reason, where the sink lets them be read."""
    with svc.db() as db:
        job = db.store.job(job_id)
        files = {f.url for f in db.store.files(job_id)}
    location, records = read_deadletters(job.config.sink, files, limit, offset)
    return DeadLettersOut(job_id=job_id, location=location, records=records)
