"""Prometheus metrics of one reprocessing worker (`tailrace worker --job … --metrics-port`):
its lines by outcome, bytes and files, read from the worker at scrape time. The figures
continue from the worker's checkpointed ones after a restart, so they are counters.

The admin service's ``tailrace_reprocessing_events`` says the same per job, from the
database; these are per pod, for a pod monitor, while the worker runs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from tailrace.observability.health import Check, Health
from tailrace.observability.server import ProbeServer, serve

if TYPE_CHECKING:
    from tailrace.pipeline.worker import ReprocessWorker


class WorkerCollector(Collector):
    def __init__(self, worker: ReprocessWorker) -> None:
        self.worker = worker

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        assigned, processed, total_bytes, counters = self.worker.progress()
        labels = ["job_id", "worker_index"]
        mine = [self.worker.job_id, str(self.worker.index)]
        events = CounterMetricFamily(
            "tailrace_reprocessing_worker_events",
            "Lines this worker read, by outcome (read = sent + filtered + skipped + deadlettered)",
            labels=[*labels, "outcome"],
        )
        for outcome, value in counters.by_outcome():
            events.add_metric([*mine, outcome], value)
        done = CounterMetricFamily(
            "tailrace_reprocessing_worker_processed_bytes",
            "Bytes of its files this worker processed",
            labels=labels,
        )
        done.add_metric(mine, counters.processed_bytes)
        files = GaugeMetricFamily(
            "tailrace_reprocessing_worker_files",
            "Files this worker took (assigned) and finished (processed)",
            labels=[*labels, "state"],
        )
        files.add_metric([*mine, "assigned"], assigned)
        files.add_metric([*mine, "processed"], processed)
        size = GaugeMetricFamily(
            "tailrace_reprocessing_worker_bytes",
            "Bytes of the files this worker took",
            labels=labels,
        )
        size.add_metric(mine, total_bytes)
        yield events
        yield done
        yield files
        yield size


def serve_worker(
    worker: ReprocessWorker, port: int, addr: str, ready: Check | None = None
) -> ProbeServer:
    """The worker's metrics and probes on ``http://addr:port/``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(WorkerCollector(worker))
    return serve([registry], Health(ready=[ready] if ready else []), host=addr, port=port)
