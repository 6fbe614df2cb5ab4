"""What ``/metrics`` exports from the service: the engine's queue gauges (read from the
store at scrape time) and the reprocessing jobs' counts and counters."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ..engine.metrics import QueueCollector
from ..engine.states import Priority
from ..pipeline.jobs import ReprocessingStatus
from .services import Handle

ACTIVE_JOBS_SHOWN = 100
QUEUE_STATS_MAX_AGE_S = 5.0
log = logging.getLogger("tailrace.api.metrics")


Depths = tuple[list[tuple[str, Priority, str, int]], list[str]]


class _PooledQueueCollector(Collector):
    """The queue gauges, read at most every ``max_age_s``: every pod and the admin service
    may be scraped, each every 30 s, and a read walks every live and dead job. A scrape that
    finds the figures older answers with them and has them read again in the background
    (``tailrace_queue_stats_age_seconds`` says how old they are)."""

    def __init__(self, db: Callable[[], AbstractContextManager[Handle]], max_age_s: float) -> None:
        self.db = db
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._value: Depths | None = None
        self._read_at = 0.0
        self._reading = False

    def _read(self) -> Depths:
        with self.db() as handle:
            store = handle.app.store
            value = (store.queue_depths(), [q.name for q in store.queues_list()])
        with self._lock:
            self._value, self._read_at = value, time.monotonic()
        return value

    def _read_in_background(self) -> None:
        try:
            self._read()
        except Exception:  # the stale figures stay, and their age says so
            log.warning("reading the queue gauges failed", exc_info=True)
        finally:
            with self._lock:
                self._reading = False

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            value, age = self._value, time.monotonic() - self._read_at
            again = value is not None and age > self.max_age_s and not self._reading
            if again:
                self._reading = True
        if value is None:
            value, age = self._read(), 0.0
        elif again:
            threading.Thread(target=self._read_in_background, daemon=True).start()
        yield from QueueCollector.render(*value)
        stale = GaugeMetricFamily(
            "tailrace_queue_stats_age_seconds", "How old the queue gauges of this scrape are"
        )
        stale.add_metric([], round(age, 3))
        yield stale


class ReprocessingCollector(Collector):
    """Jobs by status, and the counters of unfinished jobs (the newest 100 running and
    pending): one query, which reads only the unfinished jobs' files and workers."""

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
            counts, active = handle.store.jobs_metrics(ACTIVE_JOBS_SHOWN)
        for status in ReprocessingStatus:
            jobs.add_metric([str(status)], counts.get(str(status), 0))
        for job in active:
            live = job.counters
            for outcome, value in live.by_outcome():
                events.add_metric([job.id, outcome], value)
            if job.total_bytes:
                done.add_metric([job.id], min(1.0, live.processed_bytes / job.total_bytes))
        yield jobs
        yield events
        yield done


def registry(db: Callable[[], AbstractContextManager[Handle]]) -> CollectorRegistry:
    found = CollectorRegistry(auto_describe=False)
    found.register(_PooledQueueCollector(db, QUEUE_STATS_MAX_AGE_S))
    found.register(ReprocessingCollector(db))
    return found
