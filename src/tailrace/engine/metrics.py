"""Prometheus metrics: counters the worker updates, and queue gauges read from the store at
scrape time (so any process with a store connection can serve them)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ..observability import server
from ..observability.health import Check, CheckFailed, Health
from ..observability.server import ProbeServer
from .states import Priority
from .store import Store

log = logging.getLogger("tailrace.metrics")
T = TypeVar("T")

REGISTRY = CollectorRegistry(auto_describe=True)

JOBS_STARTED = Counter(
    "tailrace_jobs_started", "Job attempts started", ["queue", "task"], registry=REGISTRY
)
JOBS_COMPLETED = Counter(
    "tailrace_jobs_completed", "Jobs that succeeded", ["queue", "task"], registry=REGISTRY
)
JOBS_FAILED = Counter(
    "tailrace_jobs_failed",
    "Job attempts that raised (retried or dead)",
    ["queue", "task"],
    registry=REGISTRY,
)
JOBS_DEAD = Counter(
    "tailrace_jobs_dead",
    "Jobs that exhausted their attempts",
    ["queue", "task"],
    registry=REGISTRY,
)
JOB_DURATION = Histogram(
    "tailrace_job_duration_seconds",
    "Time a job attempt ran",
    ["queue", "task"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800),
    registry=REGISTRY,
)
JOB_WAIT = Histogram(
    "tailrace_job_wait_seconds",
    "Time from a job becoming due (enqueued, or its retry time) to an attempt's start",
    ["queue"],
    buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600),
    registry=REGISTRY,
)


class QueueCollector(Collector):
    """Queue depth by queue, priority and state, and dead-letter depth, read at scrape.

    Depth counts only live jobs (``pending``: due now; ``scheduled``: waiting for a later
    ``run_at``, such as retries and delayed jobs; ``running``), read from the partial indexes
    that hold them: a scrape costs the same however many finished jobs are retained. Every
    known queue (one that ever had live jobs, or was paused or capped) exports all its series,
    zero included, so that a rate or delta alert sees the first job arrive."""

    STATES = ("pending", "scheduled", "running")

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from self.render(
            self.store.queue_depths(), [q.name for q in self.store.queues_list()]
        )

    @classmethod
    def render(
        cls, depths: list[tuple[str, Priority, str, int]], known: list[str]
    ) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            "tailrace_queue_depth",
            "Live jobs by queue, priority and state (pending: due now; scheduled: later)",
            labels=["queue", "priority", "state"],
        )
        dead = GaugeMetricFamily(
            "tailrace_dead_letter_depth",
            "Dead jobs waiting for replay or discard",
            labels=["queue"],
        )
        counts: dict[tuple[str, str, str], int] = {}
        dead_by_queue: dict[str, int] = {}
        for queue, priority, bucket, n in depths:
            if bucket == "dead":
                dead_by_queue[queue] = dead_by_queue.get(queue, 0) + n
            else:
                key = (queue, priority.name.lower(), bucket)
                counts[key] = counts.get(key, 0) + n
        for queue in known:
            dead_by_queue.setdefault(queue, 0)
            for priority in Priority:
                for state in cls.STATES:
                    counts.setdefault((queue, priority.name.lower(), state), 0)
        for key, n in sorted(counts.items()):
            depth.add_metric(list(key), n)
        for queue, count in sorted(dead_by_queue.items()):
            dead.add_metric([queue], count)
        yield depth
        yield dead


class PromptStore:
    """A store opened on first use with a prompt policy and opened again after a failure:
    a scrape or a probe must answer within its timeout however long an outage lasts (the
    worker's own store waits outages out)."""

    def __init__(self, open_store: Callable[[], Store]) -> None:
        self._open = open_store
        self._store: Store | None = None
        self._lock = threading.Lock()

    def run(self, op: Callable[[Store], T]) -> T:
        with self._lock:
            try:
                if self._store is None:
                    self._store = self._open()
                return op(self._store)
            except Exception:
                if self._store is not None:
                    self._store.close()
                self._store = None
                raise


class _OutageTolerantQueueCollector(Collector):
    """The queue gauges through a `PromptStore`; while the database is away they are left
    out of the scrape, and the worker's counters are still served."""

    def __init__(self, store: PromptStore) -> None:
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            depths, known = self.store.run(
                lambda s: (s.queue_depths(), [q.name for q in s.queues_list()])
            )
        except Exception as exc:
            log.warning("the queue gauges are left out of this scrape: %s", exc)
            return
        yield from QueueCollector.render(depths, known)


def serve(
    port: int,
    open_store: Callable[[], Store],
    addr: str = "127.0.0.1",
    *,
    pool: Mapping[str, Any] | None = None,
    pool_name: str | None = None,
) -> ProbeServer:
    """Expose the worker's metrics (its own, and the object jobs' it runs) on
    ``http://addr:port/metrics`` and its probes beside them (ready while the database
    answers), from background threads. `open_store` opens a store with a prompt policy.
    `pool` (queues, priorities, concurrency…) is shown by the liveness check ``scheduler``,
    where the priority-job framework's runbooks look (``.checks[] | select(.name |
    contains("scheduler"))``); with `pool_name`, whether that pool is paused now (read at
    each probe, left out while the database is away: liveness does not hang on it)."""
    from ..objects import metrics as objects_metrics

    store = PromptStore(open_store)
    REGISTRY.register(_OutageTolerantQueueCollector(store))

    def scheduler() -> dict[str, Any]:
        data = dict(pool or {})
        if pool_name is not None:
            try:
                listed = store.run(lambda s: s.pools_list())
            except Exception:  # the readiness check says why
                return data
            data["paused"] = any(p.name == pool_name and p.paused for p in listed)
        return data

    live = [Check("scheduler", scheduler, cache_s=0.0)]
    health = Health(live=live, ready=[database_check(store)])
    return server.serve([REGISTRY, objects_metrics.REGISTRY], health, host=addr, port=port)


def database_check(store: PromptStore) -> Check:
    """Ready while the database answers and its schema is current."""

    def probe() -> dict[str, Any]:
        pending = store.run(lambda s: s.migrations_pending())
        if pending:
            raise CheckFailed(f"migrations pending: {', '.join(pending)}")
        return {}

    return Check("database", probe, cache_s=2.0)
