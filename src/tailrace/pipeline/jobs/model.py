"""Reprocessing jobs as records: the job, its files and its workers, with their counters.

The counters keep one invariant, per file and per job: lines read = sent + filtered +
skipped + dead-lettered. "Sent" means delivered (acknowledged by the broker, committed by
the database, fsync'd to the file) as of the file's last checkpoint.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

from tailrace.pipeline.filters import date_bound


class ReprocessingStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (
            ReprocessingStatus.COMPLETED,
            ReprocessingStatus.FAILED,
            ReprocessingStatus.CANCELLED,
        )


#: The most worker processes one job runs, and the default of its `max_workers`: the
#: planner, the CLI and the API all take it from here.
MAX_WORKERS = 50

#: Events handed to the sink at once, unless a job says otherwise.
BATCH_SIZE = 2_000

#: How a file's error starts when the reader could not read it to its end (a truncated or
#: corrupt stream): it would fail the same way every time, so it is not retried, and a
#: resume does not read it again.
UNREADABLE = "unreadable:"


class ReprocessingConfig(msgspec.Struct, frozen=True):
    """What a reprocessing job does: stored as the job's `config` JSON (`to_stored`,
    `from_stored`), and shown by the API (its `JobConfigOut` is made from these fields)."""

    source: str
    sink: str
    stream_ids: tuple[str, ...] = ()
    connection_ids: tuple[str, ...] = ()
    date_from: str | None = None
    date_to: str | None = None
    where: tuple[str, ...] = ()
    max_workers: int = MAX_WORKERS
    s3_endpoint_url: str | None = None
    checkpoint_s: float = 1.0  # flush and checkpoint this often: bounds duplicates after a crash
    batch_size: int = BATCH_SIZE
    # Dotted paths tried in order for each event field; empty keeps the defaults.
    stream_id_fields: tuple[str, ...] = ()
    time_fields: tuple[str, ...] = ()
    message_id_fields: tuple[str, ...] = ()
    # where the job may read local files, checked at every open (set for jobs started
    # through the API: TAILRACE_API_SOURCE_ROOTS); empty: anywhere
    roots: tuple[str, ...] = ()
    write_roots: tuple[str, ...] = ()  # the same for the sink's file and its dead letters
    include: tuple[str, ...] = ()  # globs of file names to read besides the log files
    exclude: tuple[str, ...] = ()  # globs of file names never to read
    # Jitsu's start fields: send nothing (the sink is null:), begin at a file and line,
    # send at most `limit` events (0/None: all), try each file this often
    dry_run: bool = False
    start_file: str | None = None
    start_line: int = 0
    limit: int | None = None
    retry_attempts: int | None = None
    # what planning left out of the source, by reason: {"counts": {...}, "examples": {...}}
    listing_skipped: dict[str, Any] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        # Go's zero time (what Jitsu's Go clients send for no date) and blanks mean unset:
        # normalised here, so every way in (CLI, API, a stored config) agrees.
        msgspec.structs.force_setattr(self, "date_from", date_bound(self.date_from))
        msgspec.structs.force_setattr(self, "date_to", date_bound(self.date_to))

    def to_stored(self) -> str:
        """The job's `config` column (and Kubernetes' TAILRACE_JOB_CONFIG): every field."""
        return msgspec.json.encode(self).decode()

    @classmethod
    def from_stored(cls, stored: str | bytes | dict[str, Any]) -> ReprocessingConfig:
        """A stored config, as any version wrote it: fields it lacks, and those it left
        empty (null, 0, ""), take their defaults; fields unknown here are ignored."""
        data: dict[str, Any] = (
            msgspec.json.decode(stored) if isinstance(stored, str | bytes) else stored
        )
        given = {name: value for name, value in data.items() if value}
        # a job Jitsu's admin stored (an adopted table) names its source s3_path or
        # local_path, and has no sink: its workers sent to the admin's Kafka topic
        given.setdefault("source", data.get("s3_path") or data.get("local_path") or "")
        given.setdefault("sink", "")
        return msgspec.convert(given, cls, strict=False)


class Counters(msgspec.Struct):
    """One file's counters (or a sum of them)."""

    lines: int = 0
    sent: int = 0
    filtered: int = 0
    skipped: int = 0
    deadlettered: int = 0
    processed_bytes: int = 0

    @property
    def balanced(self) -> bool:
        """The invariant: every line read is accounted for exactly once."""
        return self.lines == self.sent + self.filtered + self.skipped + self.deadlettered

    def by_outcome(self) -> tuple[tuple[str, int], ...]:
        """The figures as metrics label them: ``read`` (the lines), then each outcome."""
        return (
            ("read", self.lines),
            ("sent", self.sent),
            ("filtered", self.filtered),
            ("skipped", self.skipped),
            ("deadlettered", self.deadlettered),
        )

    def add(self, other: Counters) -> None:
        self.lines += other.lines
        self.sent += other.sent
        self.filtered += other.filtered
        self.skipped += other.skipped
        self.deadlettered += other.deadlettered
        self.processed_bytes += other.processed_bytes

    def copy(self) -> Counters:
        return Counters(
            self.lines,
            self.sent,
            self.filtered,
            self.skipped,
            self.deadlettered,
            self.processed_bytes,
        )

    def as_dict(self) -> dict[str, int]:
        """By name: a file's checkpoint (its sink's mark), a row's columns, a log record."""
        return msgspec.structs.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Counters:
        """As `as_dict` wrote them; missing or empty figures are zero, others ignored."""
        return msgspec.convert({k: v for k, v in data.items() if v}, cls, strict=False)


def live_counters(files: Counters, workers: list[Counters]) -> Counters:
    """A running job's counters: the files' checkpointed sums, or what the workers report
    now when further along (they write several times a second, checkpoints once a flush)."""
    if not workers:
        return files
    live = Counters()
    for counters in workers:
        live.add(counters)
    return live if live.lines > files.lines else files


@dataclass(slots=True)
class FileRecord:
    job_id: str
    index: int
    url: str
    size: int
    status: ReprocessingStatus
    worker_index: int | None
    attempts: int
    line: int
    offset: int
    counters: Counters
    skip_reasons: dict[str, int]
    error: str | None
    started_at: datetime | None
    completed_at: datetime | None
    checkpoint_key: str | None = None

    @property
    def unreadable(self) -> bool:
        """Failed because its bytes could not be read to their end: for good."""
        return self.status is ReprocessingStatus.FAILED and (self.error or "").startswith(
            UNREADABLE
        )

    @property
    def key(self) -> str:
        """Names the file for checkpoints stored by a sink: within its job, unless the job
        gave it a key of its own (ingestion: the same file version across runs)."""
        return self.checkpoint_key or f"{self.job_id}/{self.index}"


@dataclass(slots=True)
class WorkerRecord:
    """A row of `reprocessing_workers`, with the columns of reference 000."""

    job_id: str
    worker_index: int
    status: ReprocessingStatus
    started_at: datetime | None
    updated_at: datetime | None
    completed_at: datetime | None
    current_file: str | None
    current_line: int
    current_timestamp: str | None
    assigned_files: int
    processed_files: int
    counters: Counters
    total_bytes: int
    restarts: int
    error: str | None


@dataclass(slots=True)
class ReprocessingJob:
    id: str
    config: ReprocessingConfig
    status: ReprocessingStatus
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    k8s_job_name: str | None
    total_files: int
    total_workers: int
    total_bytes: int
    error: str | None
    counters: Counters = field(default_factory=Counters)
    files_by_status: dict[str, int] = field(default_factory=dict)
    skip_reasons: dict[str, int] = field(default_factory=dict)

    @property
    def processed_files(self) -> int:
        return self.files_by_status.get(ReprocessingStatus.COMPLETED, 0)


@dataclass(frozen=True, slots=True)
class LiveJob:
    """An unfinished job as a metrics scrape sees it: its files' checkpointed counters and
    the sum of what its workers report now."""

    id: str
    status: ReprocessingStatus
    total_bytes: int
    files: Counters
    workers: int
    workers_now: Counters

    @property
    def counters(self) -> Counters:
        """The further along of the two (as `live_counters` picks)."""
        if self.workers and self.workers_now.lines > self.files.lines:
            return self.workers_now
        return self.files


class IngestStatus(enum.StrEnum):
    """A file version's state in `tailrace ingest`'s record (the names of reference 003)."""

    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class ProcessedFile(msgspec.Struct, frozen=True):
    """One version of a stored file, as `tailrace ingest` tracks it."""

    bucket: str
    key: str
    version: str
    size: int
    status: IngestStatus
    attempts: int
    job_id: str | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """As `tailrace ingest --json` and the ingest API show it."""
        shown: dict[str, Any] = msgspec.to_builtins(self)
        return shown
