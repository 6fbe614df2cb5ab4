"""What ``/metrics`` exports from the service: the engine's queue gauges (read from the
store at scrape time) and the reprocessing jobs' counts and counters."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ..observability.metrics import QueueCollector
from ..pipeline.jobs import JobStatus
from ..pipeline.jobs.model import live_counters
from .services import Handle

ACTIVE_JOBS_SHOWN = 100


class _PooledQueueCollector(Collector):
    def __init__(self, db: Callable[[], AbstractContextManager[Handle]]) -> None:
        self.db = db

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self.db() as handle:
            yield from QueueCollector(handle.app.store).collect()


class ReprocessingCollector(Collector):
    """Jobs by status, and the counters of unfinished jobs (the newest 100)."""

    def __init__(self, db: Callable[[], AbstractContextManager[Handle]]) -> None:
        self.db = db

    def collect(self) -> Iterator[GaugeMetricFamily]:
        jobs = GaugeMetricFamily(
            "tailrace_reprocessing_jobs", "Reprocessing jobs by status", labels=["status"]
        )
        events = GaugeMetricFamily(
            "tailrace_reprocessing_events",
            "Lines of unfinished reprocessing jobs, by outcome",
            labels=["job_id", "outcome"],
        )
        done = GaugeMetricFamily(
            "tailrace_reprocessing_progress_ratio",
            "Bytes processed over bytes to process, per unfinished job",
            labels=["job_id"],
        )
        with self.db() as handle:
            store = handle.store
            for status in JobStatus:
                jobs.add_metric([str(status)], store.jobs_count(status))
            for status in (JobStatus.RUNNING, JobStatus.PENDING):
                active, _ = store.jobs_page(status, limit=ACTIVE_JOBS_SHOWN)
                for job in active:
                    live = live_counters(job.counters, [w.counters for w in store.workers(job.id)])
                    for outcome, value in (
                        ("read", live.lines),
                        ("sent", live.sent),
                        ("filtered", live.filtered),
                        ("skipped", live.skipped),
                        ("deadlettered", live.deadlettered),
                    ):
                        events.add_metric([job.id, outcome], value)
                    if job.total_bytes:
                        done.add_metric([job.id], min(1.0, live.processed_bytes / job.total_bytes))
        yield jobs
        yield events
        yield done


def registry(db: Callable[[], AbstractContextManager[Handle]]) -> CollectorRegistry:
    found = CollectorRegistry(auto_describe=False)
    found.register(_PooledQueueCollector(db))
    found.register(ReprocessingCollector(db))
    return found
