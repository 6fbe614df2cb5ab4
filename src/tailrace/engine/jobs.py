"""What a job is: the request to enqueue one, and the stored record."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, overload

from .states import JobState, Priority


@dataclass(frozen=True, slots=True)
class NewJob:
    """One job to enqueue, fully resolved (defaults applied, arguments already JSON)."""

    task: str
    args_json: str
    queue: str
    priority: Priority
    run_at: datetime
    sort_at: datetime  # run_at pushed back by priority: the claim order, see App._sort_at
    max_attempts: int
    timeout_s: float | None = None
    dedup_key: str | None = None
    dedup_window_s: float | None = None


class JobBatch(Sequence[NewJob]):
    """Jobs to enqueue as runs: one template, and the JSON arguments of each job in the run.

    ``App.enqueue_many`` builds one without an object per job, and the PostgreSQL store
    encodes each run's shared columns once; to anything else it is a sequence of ``NewJob``.
    A job with a dedup key is always a run of its own.
    """

    __slots__ = ("_len", "runs")

    def __init__(self) -> None:
        self.runs: list[tuple[NewJob, list[bytes]]] = []
        self._len = 0

    @classmethod
    def of(cls, jobs: Iterable[NewJob]) -> JobBatch:
        if isinstance(jobs, JobBatch):
            return jobs
        batch = cls()
        for job in jobs:
            batch.add(job, job.args_json.encode())
        return batch

    def add(self, template: NewJob, args_json: bytes) -> None:
        """Append a job: ``template`` with ``args_json`` (its own ``args_json`` is ignored)."""
        runs = self.runs
        if runs and runs[-1][0] is template and template.dedup_key is None:
            runs[-1][1].append(args_json)
        else:
            runs.append((template, [args_json]))
        self._len += 1

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[NewJob]:
        for template, args in self.runs:
            for one in args:
                yield replace(template, args_json=one.decode())

    @overload
    def __getitem__(self, index: int) -> NewJob: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[NewJob]: ...
    def __getitem__(self, index: int | slice) -> NewJob | Sequence[NewJob]:
        if isinstance(index, slice):
            return list(self)[index]
        position = index + self._len if index < 0 else index
        if not 0 <= position < self._len:
            raise IndexError(index)
        for template, args in self.runs:
            if position < len(args):
                return replace(template, args_json=args[position].decode())
            position -= len(args)
        raise AssertionError("unreachable: the runs hold _len jobs")


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """A job as a worker sees it after claiming it."""

    id: int
    task: str
    args: Any
    queue: str
    priority: Priority
    attempt: int
    max_attempts: int
    timeout_s: float | None
    run_at: datetime | None = None  # when it became due: the wait is its start minus this


@dataclass(frozen=True, slots=True)
class Job:
    """A job as stored."""

    id: int
    task: str
    args: Any
    queue: str
    priority: Priority
    state: JobState
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
    errors: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        def ts(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "id": self.id,
            "task": self.task,
            "args": self.args,
            "queue": self.queue,
            "priority": self.priority.name,
            "state": self.state.value,
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "run_at": ts(self.run_at),
            "created_at": ts(self.created_at),
            "started_at": ts(self.started_at),
            "finished_at": ts(self.finished_at),
            "worker_id": self.worker_id,
            "dedup_key": self.dedup_key,
            "timeout_s": self.timeout_s,
            "cancel_requested": self.cancel_requested,
            "errors": self.errors,
        }


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an attempt ended, as the worker reports it to the store in a batch."""

    job_id: int
    state: JobState  # SUCCEEDED, FAILED (retry), DEAD or CANCELLED
    error: dict[str, Any] | None = None
    retry_at: datetime | None = None
    sort_at: datetime | None = None
    # the attempts the worker decided with, when they differ from the stored ones (its own
    # JOBS_RETRY_MAX_ATTEMPTS_<PRIORITY>): stored with the outcome, so that the reaper and
    # the dashboard agree with it
    max_attempts: int | None = None


@dataclass(frozen=True, slots=True)
class JobFilter:
    """Selects jobs for listing, replay and discard. ``None`` means any."""

    state: JobState | None = None
    queue: str | None = None
    task: str | None = None
    priority: Priority | None = None
    ids: tuple[int, ...] | None = None
    # False: leave out the reprocessing jobs' own queues (``reprocess:<id>``), as the
    # dashboard does unless it is asked for one of them
    internal: bool = True


@dataclass(frozen=True, slots=True)
class QueueStats:
    queue: str
    priority: Priority
    state: JobState
    count: int


@dataclass(frozen=True, slots=True)
class QueueInfo:
    name: str
    paused: bool
    capacity: int | None
    # caps per priority set on this queue (JOBS_QUEUE_CAPACITY_<P> defaults are not stored)
    capacities: dict[Priority, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PoolInfo:
    """A named pool of workers (``tailrace worker --pool NAME``) an operator can pause."""

    name: str
    paused: bool
