"""The reprocessing gauges of ``/metrics``, read in one query, against what the job and
worker reads of the same store say (the dashboard's figures)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tailrace import App
from tailrace.api.metrics import ReprocessingCollector
from tailrace.pipeline.jobs import (
    Counters,
    ReprocessingConfig,
    ReprocessingStatus,
    ReprocessingStore,
)
from tailrace.pipeline.jobs.model import live_counters
from tailrace.pipeline.sources import SourceFile


def _job(store: ReprocessingStore, job_id: str, files: int, status: ReprocessingStatus) -> None:
    sources = [SourceFile(f"file:///logs/{job_id}-{i}.ndjson", 1_000) for i in range(files)]
    store.job_create(
        job_id, ReprocessingConfig(source="file:///logs/", sink="null:"), sources, files
    )
    if status is not ReprocessingStatus.PENDING:
        store.job_set_status(job_id, status)


def _scrape(store: ReprocessingStore) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    @contextmanager
    def db() -> Iterator[Any]:
        yield SimpleNamespace(store=store)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(ReprocessingCollector(db))
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_gauges_match_the_jobs_and_workers_reads(database_url: str) -> None:
    with App(database_url) as app:
        app.store.migrate()
    with ReprocessingStore(database_url) as store:
        _job(store, "done1", 2, ReprocessingStatus.COMPLETED)
        _job(store, "done2", 1, ReprocessingStatus.FAILED)
        _job(store, "wait1", 2, ReprocessingStatus.PENDING)
        _job(store, "run1", 3, ReprocessingStatus.RUNNING)
        _job(store, "run2", 2, ReprocessingStatus.RUNNING)
        # run1: checkpoints behind what its workers report; run2: checkpoints only
        for index in range(3):
            store.file_start("run1", index, index)
            store.worker_start("run1", index, f"w{index}")
            store.file_checkpoint("run1", index, 10, 100, Counters(10, 7, 2, 0, 1, 100), {})
            store.worker_progress(
                "run1",
                index,
                current_file=f"file:///logs/run1-{index}.ndjson",
                current_line=40 + index,
                current_timestamp=None,
                assigned_files=1,
                processed_files=0,
                total_bytes=1_000,
                counters=Counters(40 + index, 30, 5, 1, 4 + index, 400),
            )
        store.file_start("run2", 0, 0)
        store.file_checkpoint("run2", 0, 25, 900, Counters(25, 20, 5, 0, 0, 900), {})

        got = _scrape(store)
        for status in ReprocessingStatus:
            expected = store.jobs_count(status)
            assert got[("tailrace_reprocessing_jobs", (("status", str(status)),))] == expected
        assert got[("tailrace_reprocessing_jobs", (("status", "running"),))] == 2
        shown = {labels[0][1] for (name, labels) in got if name.endswith("_events")}
        assert shown == {"run1", "run2", "wait1"}
        for job_id in shown:
            job = store.job(job_id)
            live = live_counters(job.counters, [w.counters for w in store.workers(job_id)])
            for outcome, value in (
                ("read", live.lines),
                ("sent", live.sent),
                ("filtered", live.filtered),
                ("skipped", live.skipped),
                ("deadlettered", live.deadlettered),
            ):
                key = ("tailrace_reprocessing_events", (("job_id", job_id), ("outcome", outcome)))
                assert got[key] == value, (job_id, outcome)
            ratio = got[("tailrace_reprocessing_progress_ratio", (("job_id", job_id),))]
            assert ratio == min(1.0, live.processed_bytes / job.total_bytes)
        # the workers were ahead of run1's checkpoints, and the ratio follows them
        run1_read = ("tailrace_reprocessing_events", (("job_id", "run1"), ("outcome", "read")))
        assert got[run1_read] == 40 + 41 + 42
        assert got[("tailrace_reprocessing_progress_ratio", (("job_id", "run2"),))] == 0.45
