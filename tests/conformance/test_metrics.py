"""Prometheus metrics: queue gauges read from the store, counters from the worker."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.core import CollectorRegistry

from tailrace import App, JobSpec
from tailrace.engine import metrics
from tests.conformance.conftest import drain


def _sample(name: str, **labels: str) -> float | None:
    return metrics.REGISTRY.get_sample_value(name, labels)


def test_queue_depth_and_dead_letter_gauges(app: App) -> None:
    app.enqueue_many([JobSpec("x", priority="HIGH", queue="emails")] * 3)

    @app.task(name="dies", max_attempts=1)
    def dies() -> None:
        raise RuntimeError("no")

    app.enqueue("dies", queue="reports")
    drain(app, queues=["reports"])
    registry = CollectorRegistry()
    registry.register(metrics.QueueCollector(app.store))
    text = generate_latest(registry).decode()
    assert 'tailrace_queue_depth{priority="high",queue="emails",state="pending"} 3.0' in text
    assert 'tailrace_dead_letter_depth{queue="reports"} 1.0' in text


def test_worker_counts_completions_failures_and_durations(app: App) -> None:
    @app.task(name="metric_ok")
    def metric_ok() -> None:
        pass

    @app.task(name="metric_bad", max_attempts=2)
    def metric_bad() -> None:
        raise ValueError

    labels = {"queue": "default"}
    before_ok = _sample("tailrace_jobs_completed_total", task="metric_ok", **labels) or 0
    before_dead = _sample("tailrace_jobs_dead_total", task="metric_bad", **labels) or 0
    before_failed = _sample("tailrace_jobs_failed_total", task="metric_bad", **labels) or 0
    app.enqueue_many([JobSpec("metric_ok")] * 4 + [JobSpec("metric_bad")])
    drain(app)
    assert _sample("tailrace_jobs_completed_total", task="metric_ok", **labels) == before_ok + 4
    assert _sample("tailrace_jobs_failed_total", task="metric_bad", **labels) == before_failed + 2
    assert _sample("tailrace_jobs_dead_total", task="metric_bad", **labels) == before_dead + 1
    count = _sample("tailrace_job_duration_seconds_count", task="metric_ok", **labels)
    assert count is not None and count >= 4
