"""Prometheus metrics: counters the worker updates, and queue gauges read from the store at
scrape time (so any process with a store connection can serve them; the worker's server is
`tailrace.observability.worker_server`)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .states import Priority
from .store import Store

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
