"""Prometheus metrics: counters the worker updates, and queue gauges read from the store at
scrape time (so any process with a store connection can serve them)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ..engine.states import JobState
from ..engine.store import Store

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


class QueueCollector(Collector):
    """Queue depth by queue, priority and state, and dead-letter depth, read at scrape."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            "tailrace_queue_depth",
            "Jobs by queue, priority and state",
            labels=["queue", "priority", "state"],
        )
        dead = GaugeMetricFamily(
            "tailrace_dead_letter_depth",
            "Dead jobs waiting for replay or discard",
            labels=["queue"],
        )
        dead_by_queue: dict[str, int] = {}
        for s in self.store.queues_stats():
            if s.state is JobState.DEAD:
                dead_by_queue[s.queue] = dead_by_queue.get(s.queue, 0) + s.count
            if not s.state.finished:
                depth.add_metric([s.queue, s.priority.name.lower(), s.state.value], s.count)
        for queue, count in sorted(dead_by_queue.items()):
            dead.add_metric([queue], count)
        yield depth
        yield dead


def serve(port: int, store: Store, addr: str = "127.0.0.1") -> None:
    """Expose the worker's metrics on ``http://addr:port/metrics`` from a background thread."""
    REGISTRY.register(QueueCollector(store))
    start_http_server(port, addr=addr, registry=REGISTRY)
