"""The API's request and response bodies: the JSON shapes of reference 000 for
reprocessing, and the queue operations of reference 002. They make the OpenAPI document."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model

from ..pipeline.jobs.model import BATCH_SIZE, MAX_WORKERS, ReprocessingConfig

JobStatusName = Literal["pending", "running", "completed", "failed", "cancelled"]
EngineStateName = Literal["pending", "running", "succeeded", "failed", "dead", "cancelled"]
PriorityName = Literal["CRITICAL", "HIGH", "DEFAULT", "LOW", "BULK"]


# PostgreSQL text cannot hold NUL: refuse it with a 422 at the door, not a 500 at the store
NO_NUL = r"^[^\x00]*$"
# listings and bulk selections of engine jobs
INTERNAL = Query(
    False, description="include the reprocessing jobs' own queues (reprocess:<id>) too"
)
Text = Annotated[str, StringConstraints(max_length=4096, pattern=NO_NUL)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=NO_NUL)]
Item = Annotated[str, StringConstraints(min_length=1, max_length=1000, pattern=NO_NUL)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


_ERROR_DESCRIPTIONS = {
    400: "The request cannot be carried out",
    401: "No valid token or session",
    403: "A path, sink or endpoint the service refuses",
    404: "No such job",
    422: "The request is invalid",
    502: "The executor could not start the workers",
    503: "The database is unreachable",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The errors a router's routes may answer, in the OpenAPI document, in this order."""
    return {code: {"model": ErrorBody, "description": _ERROR_DESCRIPTIONS[code]} for code in codes}


# -- reprocessing ---------------------------------------------------------------------------


class FileItem(_Strict):
    """A file as Jitsu's files.json lists it."""

    path: Item
    size: int | None = Field(None, ge=0)
    last_modified: str | None = None


class StartJob(_Strict):
    """Start a reprocessing job on the files of `s3_path` or `path` (one of the two)."""

    s3_path: Text | None = Field(None, description="s3://bucket/prefix")
    path: Text | None = Field(
        None, description="A local file, directory or glob, on the service's machine"
    )
    sink: Text | None = Field(
        None,
        description="A sink URL without credentials, or @name for TAILRACE_SINK_<NAME>; "
        "default: the service's TAILRACE_DEFAULT_SINK or KAFKA_BOOTSTRAP_SERVERS",
    )
    stream_ids: list[Item] = Field(default_factory=list, max_length=10_000)
    connection_ids: list[Item] = Field(default_factory=list, max_length=10_000)
    date_from: datetime | None = None
    date_to: datetime | None = None
    where: list[Item] = Field(default_factory=list, description="FIELD=VALUE", max_length=100)
    batch_size: int = Field(BATCH_SIZE, ge=1, le=100_000, strict=True)
    max_workers: int = Field(MAX_WORKERS, ge=1, le=MAX_WORKERS, strict=True)
    s3_endpoint_url: Text | None = None
    include: list[Item] = Field(
        default_factory=list,
        max_length=100,
        description="Globs of file names to read besides log files (.ndjson, .jsonl, .json, "
        ".log, optionally .gz/.zst) when listing a directory or prefix",
    )
    exclude: list[Item] = Field(
        default_factory=list, max_length=100, description="Globs of file names never to read"
    )
    # Jitsu admin's own fields (reference 000's implementation), honoured
    local_path: Text | None = Field(None, description="Jitsu's name for path")
    files: list[Item | FileItem] = Field(
        default_factory=list,
        max_length=100_000,
        description="Exactly these files (paths or s3:// URLs, or {path, size}), not a listing",
    )
    start_file: Item | None = Field(
        None, description="Skip the files before this one (its name, or its path or URL)"
    )
    start_line: int = Field(
        0, ge=0, strict=True, description="In start_file, skip this many lines first"
    )
    limit: int | None = Field(
        None, ge=0, strict=True, description="Send at most this many events (0: no limit)"
    )
    dry_run: bool = Field(False, description="Plan, read and count; send nothing")
    retry_attempts: int | None = Field(
        None, ge=1, le=1000, strict=True, description="Attempts per file (default 5)"
    )
    max_concurrency: int | None = Field(
        None, ge=1, le=MAX_WORKERS, strict=True, description="Jitsu's name for max_workers"
    )


#: The fields of a job's config that the API shows, in this order: not where the job may
#: read and write (`roots`), nor its S3 endpoint or tuning, nor what the listing skipped
#: (shown as the job's `skipped_files`).
SHOWN_CONFIG = (
    "source",
    "sink",
    "stream_ids",
    "connection_ids",
    "date_from",
    "date_to",
    "where",
    "max_workers",
    "batch_size",
    "include",
    "exclude",
    "dry_run",
    "start_file",
    "start_line",
    "limit",
    "retry_attempts",
)


def _config_out() -> type[BaseModel]:
    """A job's config as shown, made from `ReprocessingConfig` itself: its shown fields,
    with their types; each one always there."""
    types = {f.name: f.type for f in msgspec.structs.fields(ReprocessingConfig)}
    fields: dict[str, Any] = {name: (types[name], ...) for name in SHOWN_CONFIG}
    return create_model("JobConfigOut", **fields)


if TYPE_CHECKING:
    JobConfigOut = BaseModel
else:
    JobConfigOut = _config_out()


class JobOut(BaseModel):
    id: str
    status: JobStatusName
    config: JobConfigOut
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    k8s_job_name: str | None
    total_files: int
    total_workers: int
    total_bytes: int
    processed_files: int
    files_by_status: dict[str, int]
    total_lines: int
    success_count: int = Field(description="Events delivered to the sink")
    error_count: int = Field(description="Lines dead-lettered")
    skipped_count: int
    filtered_count: int
    processed_bytes: int
    progress: float = Field(ge=0, le=1, description="Bytes processed over bytes in all files")
    skip_reasons: dict[str, int]
    skipped_files: dict[str, int] = Field(
        default_factory=dict,
        description="Files the listing did not read, by reason (temporary, marker, not a log)",
    )
    skipped_file_examples: dict[str, list[str]] = Field(
        default_factory=dict, description="A few of those files' names, by reason"
    )
    balanced: bool = Field(description="lines = sent + filtered + skipped + dead-lettered")
    error: str | None
    abandoned: str | None = Field(
        None,
        description="For a running job whose workers are gone (none reports, no live lease): "
        "why; resume it",
    )


class JobPage(BaseModel):
    jobs: list[JobOut]
    total: int
    limit: int
    offset: int


class WorkerOut(BaseModel):
    worker_index: int
    status: JobStatusName
    started_at: datetime | None
    updated_at: datetime | None
    completed_at: datetime | None
    current_file: str | None
    current_line: int
    current_timestamp: str | None
    assigned_files: int
    processed_files: int
    total_lines: int
    success_count: int
    error_count: int
    skipped_count: int
    filtered_count: int
    total_bytes: int
    processed_bytes: int
    restarts: int
    error: str | None


class WorkersOut(BaseModel):
    job_id: str
    workers: list[WorkerOut]


class FileOut(BaseModel):
    index: int
    url: str
    size: int
    status: JobStatusName
    worker_index: int | None
    attempts: int
    line: int = Field(description="Lines done as of the file's last checkpoint")
    total_lines: int
    success_count: int
    error_count: int
    skipped_count: int
    filtered_count: int
    processed_bytes: int
    error: str | None = Field(description="Why the file failed (or stopped)")
    retryable: bool = Field(description="False when its bytes cannot be read to their end")
    started_at: datetime | None
    completed_at: datetime | None


class FilesOut(BaseModel):
    job_id: str
    files: list[FileOut]
    total: int
    limit: int
    offset: int


class WorkerLogOut(BaseModel):
    worker_index: int
    pod_name: str
    lines: list[str]
    error: str | None = None


class LogsByWorker(BaseModel):
    job_id: str
    sorted: Literal[False]
    logs: list[WorkerLogOut]


class LogLineOut(BaseModel):
    timestamp: str
    worker_index: int
    pod_name: str
    message: str
    level: str | None


class LogsByTime(BaseModel):
    job_id: str
    sorted: Literal[True]
    lines: list[LogLineOut]


class DeadLettersOut(BaseModel):
    job_id: str
    location: str
    records: list[dict[str, Any]] | None = Field(
        description="The job's bad lines, or null where they cannot be read back (Kafka)"
    )


# -- the engine's queues and jobs ------------------------------------------------------------


class QueueOut(BaseModel):
    name: str
    paused: bool
    capacity: int | None
    capacity_by_priority: dict[str, int] = {}
    counts: dict[str, int]
    by_priority: dict[str, dict[str, int]]


class QueuesOut(BaseModel):
    queues: list[QueueOut]


class QueueState(BaseModel):
    name: str
    paused: bool


class PoolsOut(BaseModel):
    """The worker pools (``tailrace worker --pool NAME``) paused or resumed so far."""

    pools: list[QueueState]


class EngineJobOut(BaseModel):
    id: int
    task: str
    args: Any
    queue: str
    priority: PriorityName
    state: EngineStateName
    attempts: int
    max_attempts: int
    run_at: datetime
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    worker_id: str | None
    dedup_key: str | None
    timeout_s: float | None
    cancel_requested: bool
    errors: list[dict[str, Any]]
    timings: dict[str, float | None] | None = None


class EngineJobPage(BaseModel):
    jobs: list[EngineJobOut]
    limit: int
    offset: int
    next_after: int | None = None  # the `after` of the next page; None: the last page


class Enqueue(_Strict):
    task: Name
    args: Any = None
    queue: Name | None = None
    priority: PriorityName | None = None
    delay: float | None = Field(None, ge=0, le=365 * 86400, strict=True)
    max_attempts: int | None = Field(None, ge=1, le=1000, strict=True)
    timeout: float | None = Field(None, gt=0, le=86400, strict=True)
    dedup_key: Item | None = None


class DeadFilter(_Strict):
    queue: Name | None = None
    task: Name | None = None
    priority: PriorityName | None = None


class Count(BaseModel):
    count: int


class Discarded(BaseModel):
    id: int
    discarded: bool


class Health(BaseModel):
    status: str
    detail: str | None = None


# -- stream consumers ---------------------------------------------------------------------------


class PartitionLagOut(BaseModel):
    partition: int
    committed: int | None = Field(description="The group's committed offset; null if none")
    end: int = Field(description="The partition's end offset")
    lag: int


class ConsumerLagOut(BaseModel):
    group: str
    topic: str
    lag: int | None = Field(description="Summed over partitions; null when it could not be read")
    partitions: list[PartitionLagOut]
    error: str | None = None


class StreamsOut(BaseModel):
    bootstrap_servers: str | None
    consumers: list[ConsumerLagOut]
