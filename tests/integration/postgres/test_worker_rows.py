"""docs/coming-from/failover-reprocessing.md, the worker rows: they exist from the start with
their share of the files, a job is not completed while a row says running, and a row's
counters never go backwards when its worker restarts; on a real PostgreSQL schema."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tailrace.engine.app import App
from tailrace.pipeline.jobs import (
    Counters,
    ReprocessingConfig,
    ReprocessingStatus,
    ReprocessingStore,
)
from tailrace.pipeline.jobs.service import settle
from tailrace.pipeline.sources import SourceFile

pytestmark = pytest.mark.postgres


@pytest.fixture
def store(pg_url: str) -> Iterator[ReprocessingStore]:
    with App(pg_url) as app:
        app.store.migrate()
    with ReprocessingStore(pg_url) as opened:
        yield opened


def _job(store: ReprocessingStore, files: int = 5, workers: int = 2) -> None:
    listed = [SourceFile(f"/logs/f{i}.ndjson", 100 * (i + 1)) for i in range(files)]
    store.job_create("j", ReprocessingConfig("/logs", "null:"), listed, workers)


def _progress(store: ReprocessingStore, index: int, lines: int, sent: int, files: int = 0) -> None:
    store.worker_progress(
        "j",
        index,
        current_file="/logs/f0.ndjson",
        current_line=lines,
        current_timestamp=None,
        assigned_files=files,
        processed_files=files,
        total_bytes=0,
        counters=Counters(lines, sent, lines - sent),
    )


def test_worker_rows_are_there_from_the_start_with_their_share(store: ReprocessingStore) -> None:
    _job(store, files=5, workers=2)
    workers = store.workers("j")
    assert [(w.worker_index, w.status) for w in workers] == [
        (0, ReprocessingStatus.PENDING),
        (1, ReprocessingStatus.PENDING),
    ]
    # reference 000's modulo split: worker 0 gets files 0, 2, 4; worker 1 gets 1, 3
    assert [w.assigned_files for w in workers] == [3, 2]
    assert [w.total_bytes for w in workers] == [100 + 300 + 500, 200 + 400]
    store.worker_start("j", 0, "host:1")
    started = store.workers("j")[0]
    assert started.status is ReprocessingStatus.RUNNING and started.started_at is not None
    assert started.assigned_files == 3 and started.restarts == 0


def test_a_job_is_not_completed_while_a_worker_row_says_running(store: ReprocessingStore) -> None:
    _job(store, files=2, workers=2)
    store.job_start("j")
    store.worker_start("j", 0, "host:1")
    store.worker_start("j", 1, "host:2")
    for index in range(2):
        store.file_set_status("j", index, ReprocessingStatus.COMPLETED)
    store.worker_finish("j", 0, ReprocessingStatus.COMPLETED)
    assert store.job_finalize("j") is ReprocessingStatus.RUNNING  # worker 1 still says running
    store.worker_finish("j", 1, ReprocessingStatus.COMPLETED)
    assert store.job_finalize("j") is ReprocessingStatus.COMPLETED


def test_a_worker_that_vanished_does_not_hold_its_job_forever(store: ReprocessingStore) -> None:
    _job(store, files=1, workers=1)
    store.job_start("j")
    store.worker_start("j", 0, "host:1")
    store.file_set_status("j", 0, ReprocessingStatus.COMPLETED)
    # its process was killed after the file's last write: every process has exited now
    job = settle(store, "j")
    assert job.status is ReprocessingStatus.COMPLETED
    (worker,) = store.workers("j")
    assert worker.status is ReprocessingStatus.FAILED
    assert worker.error is not None and "exited without reporting" in worker.error


def test_counters_never_go_backwards_when_a_worker_restarts(store: ReprocessingStore) -> None:
    _job(store, files=3, workers=1)
    store.worker_start("j", 0, "host:1")
    _progress(store, 0, lines=1000, sent=990, files=1)
    store.worker_start("j", 0, "host:1-restarted")  # killed, started again
    _progress(store, 0, lines=400, sent=396)  # from its last checkpoint, behind the row
    (worker,) = store.workers("j")
    assert worker.restarts == 1
    assert (worker.counters.lines, worker.counters.sent, worker.counters.filtered) == (
        1000,
        990,
        10,
    )
    assert worker.processed_files == 1 and worker.assigned_files == 3
    _progress(store, 0, lines=1200, sent=1190, files=2)  # past it again: the row follows
    (worker,) = store.workers("j")
    assert (worker.counters.lines, worker.counters.sent) == (1200, 1190)
    assert worker.processed_files == 2


def test_at_the_same_line_count_a_restarted_worker_does_not_lower_its_sends(
    store: ReprocessingStore,
) -> None:
    """Sends are acknowledged after lines are read: back at the row's line count, a restarted
    worker can report fewer sent than its row says (the kill test saw sent go backwards)."""
    _job(store, files=1, workers=1)
    store.worker_start("j", 0, "host:1")
    _progress(store, 0, lines=1000, sent=900)
    store.worker_start("j", 0, "host:1-restarted")
    _progress(store, 0, lines=1000, sent=850)  # the same lines, fewer acknowledged yet
    (worker,) = store.workers("j")
    assert (worker.counters.lines, worker.counters.sent) == (1000, 900)
    _progress(store, 0, lines=1100, sent=1000)
    (worker,) = store.workers("j")
    assert (worker.counters.lines, worker.counters.sent) == (1100, 1000)
