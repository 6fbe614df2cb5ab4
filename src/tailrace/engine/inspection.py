"""What an operator reads about the engine: pages of jobs, queues with their waiting
times, the live worker processes, and the per-minute history of each queue."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .jobs import Job
from .states import Priority

# A reprocessing job's own queue (`reprocess:<id>`): shown under that job, not as a queue.
INTERNAL_QUEUE_PREFIX = "reprocess:"
# A worker that has not beaten for this long is shown as gone, and later forgotten.
WORKER_STALE_S = 60.0
WORKER_FORGET_S = 3600.0
HISTORY_KEEP_S = 24 * 3600.0


def internal_queue(name: str) -> bool:
    return name.startswith(INTERNAL_QUEUE_PREFIX)


def with_internal(asked: bool, *named: str | None) -> bool:
    """Whether a listing or a bulk selection takes in the reprocessing jobs' own queues:
    when asked, or when it names one of them (they are shown under their reprocessing job,
    as on the queues page, not among the engine's jobs)."""
    return asked or any(name is not None and internal_queue(name.strip()) for name in named)


@dataclass(frozen=True, slots=True)
class JobSearch:
    """One keyset page of jobs, newest first: ``after`` is the last id of the previous page."""

    state: str | None = None
    queue: str | None = None
    task: str | None = None
    priority: Priority | None = None
    text: str | None = None  # a job id, a dedup key, or part of a task name
    after: int | None = None
    limit: int = 50
    internal: bool = True  # False: without the `reprocess:<id>` queues' jobs


def hidden_queues(internal: bool) -> str | None:
    """The LIKE pattern of the queues a search or filter leaves out (None: none)."""
    return None if internal else INTERNAL_QUEUE_PREFIX + "%"


@dataclass(frozen=True, slots=True)
class JobPage:
    jobs: list[Job]
    next_after: int | None  # None: this is the last page


@dataclass(frozen=True, slots=True)
class QueueLine:
    """One queue and priority: depth by state, waiting, and the recent window's flow."""

    queue: str
    priority: Priority | None  # None: the queue's total over its priorities
    pending: int = 0  # due now (run_at passed), waiting for a worker
    scheduled: int = 0  # waiting for a future run_at (delays and retries)
    running: int = 0
    dead: int = 0
    oldest_wait_s: float | None = None  # the oldest due job's time since its run_at
    wait_p50_s: float | None = None  # enqueue (run_at) to start, jobs finished in the window
    wait_p95_s: float | None = None
    succeeded: int = 0  # finished in the window
    died: int = 0


@dataclass(frozen=True, slots=True)
class WorkerPresence:
    """A worker process as it announced itself, and its last heartbeat."""

    id: str
    host: str
    pid: int
    queues: list[str] | None
    priorities: list[Priority]
    concurrency: int
    in_flight: int
    processed: int
    started_at: datetime
    heartbeat_at: datetime
    age_s: float = 0.0  # since the heartbeat, by the database's clock
    pool: str | None = None  # `tailrace worker --pool NAME`

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "host": self.host,
            "pid": self.pid,
            "queues": self.queues,
            "priorities": [p.name for p in self.priorities],
            "concurrency": self.concurrency,
            "in_flight": self.in_flight,
            "processed": self.processed,
            "started_at": self.started_at.isoformat(),
            "heartbeat_at": self.heartbeat_at.isoformat(),
            "heartbeat_age_s": round(self.age_s, 3),
            "alive": self.age_s < WORKER_STALE_S,
            "pool": self.pool,
        }


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    at: datetime
    queue: str
    pending: int
    scheduled: int
    running: int
    dead: int
    succeeded: int
    failed: int
    wait_p50_s: float | None
    wait_p95_s: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "queue": self.queue,
            "pending": self.pending,
            "scheduled": self.scheduled,
            "running": self.running,
            "dead": self.dead,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "wait_p50_s": self.wait_p50_s,
            "wait_p95_s": self.wait_p95_s,
        }


def assemble_lines(rows: Iterable[Sequence[Any]]) -> list[QueueLine]:
    """Rows of (kind, queue, priority, a, b, c), as the stores' ``queue_lines`` give them,
    to one line per queue and priority (and one per queue with priority None)."""
    found: dict[tuple[str, int | None], dict[str, Any]] = {}
    for kind, queue, priority, a, b, c in rows:
        line = found.setdefault((queue, priority), {})
        if kind == "live":
            line.update(pending=int(a), scheduled=int(b), oldest_wait_s=c)
        elif kind == "running":
            line["running"] = int(a)
        elif kind == "dead":
            line.update(dead=int(a), died=int(b))
        elif kind == "recent":
            line.update(succeeded=int(a), wait_p50_s=b, wait_p95_s=c)
    return [
        QueueLine(queue, None if p is None else Priority(p), **values)
        for (queue, p), values in sorted(found.items(), key=lambda kv: (kv[0][0], _order(kv[0][1])))
    ]


def _order(priority: int | None) -> int:
    return -1 if priority is None else priority


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Linear interpolation between closest ranks (PostgreSQL's ``percentile_cont``)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = fraction * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def line_rows(
    live: Iterable[Sequence[Any]],
    recent: Iterable[Sequence[Any]],
    now: float,
    window_s: float,
    until: float | None = None,
) -> list[tuple[Any, ...]]:
    """The rows of ``queue_lines`` computed in Python (for SQLite): ``live`` holds (queue,
    priority, state, run_at, finished_at) of live and dead jobs, ``recent`` (queue, priority,
    state, waited) of jobs finished in the window, the ``window_s`` before ``until`` (None:
    now), ``until`` excluded. Epoch seconds."""
    start = (now if until is None else until) - window_s
    end = math.inf if until is None else until
    sums: dict[tuple[str, str, int | None], list[Any]] = {}

    def add(kind: str, queue: str, priority: int, values: list[Any]) -> None:
        for key in ((kind, queue, priority), (kind, queue, None)):
            acc = sums.setdefault(key, [0, 0, None] if kind != "recent" else [0, []])
            for i, v in enumerate(values):
                if kind == "recent" and i == 1:
                    acc[1].extend(v)
                elif kind == "live" and i == 2:
                    acc[2] = v if acc[2] is None or (v is not None and v > acc[2]) else acc[2]
                else:
                    acc[i] += v

    for queue, priority, state, run_at, finished_at in live:
        if state == "running":
            add("running", queue, priority, [1])
        elif state == "dead":
            add(
                "dead",
                queue,
                priority,
                [1, int(finished_at is not None and start <= finished_at < end)],
            )
        elif run_at > now:
            add("live", queue, priority, [0, 1, None])
        else:
            add("live", queue, priority, [1, 0, now - run_at])
    for queue, priority, state, waited in recent:
        add("recent", queue, priority, [int(state == "succeeded"), [waited]])
    rows: list[tuple[Any, ...]] = []
    for (kind, queue, priority), acc in sums.items():
        if kind == "recent":
            waits = acc[1]
            rows.append(
                (kind, queue, priority, acc[0], percentile(waits, 0.5), percentile(waits, 0.95))
            )
        else:
            rows.append((kind, queue, priority, acc[0], acc[1], acc[2]))
    return rows
