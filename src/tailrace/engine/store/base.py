"""The storage seam: one protocol, implemented by the SQLite and PostgreSQL stores.

Methods are noun-first (``jobs_claim``, ``lease_renew``, ``queue_pause``) so that the
operations on one thing sort together. Every method is synchronous and owns its transaction,
except ``jobs_insert`` with a caller's ``connection``: then the caller's transaction decides.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from ..inspection import HistoryPoint, JobPage, JobSearch, QueueLine, WorkerPresence
from ..jobs import (
    ClaimedJob,
    Job,
    JobFilter,
    NewJob,
    Outcome,
    PoolInfo,
    QueueInfo,
    QueueStats,
)
from ..states import JobState, Priority


class Listener(Protocol):
    """Wakes a worker when jobs may have become available."""

    def wait(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds; True if something changed."""
        ...

    def close(self) -> None: ...


class Store(Protocol):
    url: str

    def close(self) -> None: ...

    # schema
    def migrate(self) -> list[str]: ...
    def migrations_pending(self) -> list[str]: ...

    # enqueue
    def jobs_insert(
        self,
        jobs: Sequence[NewJob],
        connection: Any | None = None,
        default_caps: Mapping[Priority, int] | None = None,
    ) -> list[int]:
        """Store ``jobs``; `QueueFullError` if one would pass a queue's capacity.
        ``default_caps``: caps per priority for queues that set none of their own."""
        ...

    # working
    def jobs_claim(
        self,
        worker_id: str,
        limit: int,
        lease_s: float,
        queues: Sequence[str] | None,
        priorities: Sequence[int],
        held: Sequence[int] = (),
        pool: str | None = None,
    ) -> list[ClaimedJob]:
        """Claim up to ``limit`` jobs. ``held``: the jobs this worker runs already; a claim
        retried after a lost connection takes back any other job running under its id.
        ``pool``: the worker's pool; nothing is claimed while it is paused."""
        ...

    def jobs_finish(self, worker_id: str, outcomes: Sequence[Outcome]) -> int: ...
    def lease_renew(
        self, worker_id: str, job_ids: Sequence[int], lease_s: float
    ) -> tuple[set[int], set[int]]:
        """Extend leases; returns (ids still held, ids whose cancel was requested)."""
        ...

    def jobs_release(self, worker_id: str, job_ids: Sequence[int]) -> int: ...
    def leases_reap(
        self, grace_s: float = 0.0, gap_s: float | None = None
    ) -> list[tuple[int, JobState]]:
        """Return jobs whose lease expired; not within ``grace_s`` of an outage (this
        store's, the server's restart, or, with ``gap_s``, a pass that found the server's
        clock ``gap_s`` past the previous one: a freeze), so that live workers renew first."""
        ...

    def listener(self) -> Listener: ...

    # inspection and operations
    def job_get(self, job_id: int) -> Job: ...
    def jobs_list(self, where: JobFilter, limit: int = 100, offset: int = 0) -> list[Job]: ...
    def job_cancel(self, job_id: int) -> Job: ...
    def jobs_replay(self, where: JobFilter, aging_s: float) -> int: ...
    def jobs_discard(self, where: JobFilter) -> int: ...
    def jobs_prune(self, older_than_s: float, states: Sequence[JobState]) -> int: ...
    def jobs_vacuum(self) -> bool:
        """Reclaim dead job rows if there are many (one worker at a time); True if it ran."""
        ...

    def queue_pause(self, name: str) -> None: ...
    def queue_resume(self, name: str) -> None: ...
    def queue_set_capacity(
        self, name: str, capacity: int | None, priority: Priority | None = None
    ) -> None:
        """Cap the queue (``priority`` None) or its jobs of one priority; None removes it."""
        ...

    def queues_list(self) -> list[QueueInfo]: ...
    def pool_set_paused(self, name: str, paused: bool) -> None: ...
    def pool_add(self, name: str) -> None:
        """Make pool ``name`` known (running) unless it is already; a worker of it starts."""
        ...

    def pools_list(self) -> list[PoolInfo]: ...
    def queues_stats(self) -> list[QueueStats]: ...

    # schedules
    def cron_fire(
        self,
        schedule: str,
        tick: datetime,
        job: NewJob,
        default_caps: Mapping[Priority, int] | None = None,
    ) -> int | None:
        """Enqueue ``job`` for this tick unless some worker already did; returns its id."""
        ...

    def cron_ticks_prune(self, older_than_s: float) -> int: ...

    # what the dashboard and /metrics read (costs bounded by live jobs, not retained ones)
    def jobs_search(self, search: JobSearch) -> JobPage: ...
    def jobs_count_capped(self, where: JobFilter, cap: int) -> int: ...
    def jobs_cancel_where(self, where: JobFilter) -> int:
        """Cancel every waiting job the filter selects; ask running ones to stop."""
        ...

    def queue_lines(self, window_s: float) -> list[QueueLine]: ...
    def queue_depths(self) -> list[tuple[str, Priority, str, int]]:
        """(queue, priority, pending|scheduled|running|dead, count) of live and dead jobs."""
        ...

    def queues_remember(self) -> int:
        """Give every queue with live or dead jobs a row, so it stays known once empty."""
        ...

    # worker processes
    def worker_beat(
        self,
        worker_id: str,
        queues: Sequence[str] | None,
        priorities: Sequence[int],
        concurrency: int,
        in_flight: int,
        processed: int,
        pool: str | None = None,
    ) -> None: ...
    def worker_gone(self, worker_id: str) -> None: ...
    def workers_list(self) -> list[WorkerPresence]: ...
    def workers_forget(self, older_than_s: float) -> int: ...

    # per-minute history of each queue
    def history_roll(self, keep_s: float) -> bool: ...
    def history_read(self, since_s: float, queue: str | None = None) -> list[HistoryPoint]: ...
