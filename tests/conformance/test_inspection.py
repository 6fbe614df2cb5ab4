"""What the dashboard and /metrics read, on both stores: keyset pages of jobs, queue lines
(due apart from scheduled), bulk cancel, worker presence, the per-minute history, and the
queue gauges' zero series and wait histogram."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from prometheus_client import generate_latest
from prometheus_client.core import CollectorRegistry

from tailrace import App, JobFilter, JobSpec, JobState, Worker
from tailrace.db import Database
from tailrace.engine import metrics
from tailrace.engine.inspection import JobSearch
from tests.conformance.conftest import drain
from tests.waiting import wait_until

LATER = datetime.now(UTC) + timedelta(hours=2)


def test_keyset_pages_walk_every_job_once_newest_first(app: App) -> None:
    ids = app.enqueue_many([JobSpec("page.task", {"n": n}, queue="pages") for n in range(25)])
    seen: list[int] = []
    after: int | None = None
    pages = 0
    while True:
        page = app.store.jobs_search(JobSearch(queue="pages", after=after, limit=10))
        seen += [j.id for j in page.jobs]
        pages += 1
        if page.next_after is None:
            break
        after = page.next_after
    assert seen == sorted(ids, reverse=True)
    assert pages == 3
    by_state = app.store.jobs_search(JobSearch(state="pending", limit=100))
    assert {j.id for j in by_state.jobs} == set(ids)
    assert app.store.jobs_search(JobSearch(state="dead")).jobs == []
    found = app.store.jobs_search(JobSearch(text=str(ids[3]))).jobs
    assert [j.id for j in found] == [ids[3]]
    assert len(app.store.jobs_search(JobSearch(text="age.ta", limit=100)).jobs) == 25
    assert app.store.jobs_search(JobSearch(text="50%_")).jobs == []  # wildcards are literal


def test_the_reprocessing_queues_are_left_out_when_asked(app: App) -> None:
    shown = app.enqueue_many([JobSpec("x", queue="visible")] * 2)
    internal = app.enqueue_many([JobSpec("x", queue="reprocess:abc")] * 3)

    def searched(**kwargs: object) -> set[int]:
        return {j.id for j in app.store.jobs_search(JobSearch(limit=100, **kwargs)).jobs}  # type: ignore[arg-type]

    assert searched() == {*shown, *internal}  # the store's own default: everything
    assert searched(internal=False) == set(shown)
    assert searched(state="pending", internal=False) == set(shown)
    outside = JobFilter(internal=False)
    assert {j.id for j in app.jobs(outside)} == set(shown)
    assert app.store.jobs_count_capped(outside, 100) == 2
    assert app.store.jobs_cancel_where(outside) == 2
    assert {j.state for j in app.jobs(JobFilter(queue="reprocess:abc"))} == {JobState.PENDING}
    assert app.discard(JobFilter(state=JobState.CANCELLED, internal=False)) == 2
    assert {j.id for j in app.jobs()} == set(internal)


def test_queue_lines_tell_due_from_scheduled(app: App) -> None:
    app.enqueue_many([JobSpec("x", queue="mixed", priority="HIGH")] * 2)
    app.enqueue_many([JobSpec("x", queue="mixed", priority="HIGH", run_at=LATER)] * 3)
    lines = {(x.queue, x.priority): x for x in app.store.queue_lines(300)}
    total = lines[("mixed", None)]
    assert (total.pending, total.scheduled, total.running, total.dead) == (2, 3, 0, 0)
    assert total.oldest_wait_s is not None and total.oldest_wait_s >= 0
    high = [x for (q, p), x in lines.items() if q == "mixed" and p is not None]
    assert [(x.priority.name, x.pending, x.scheduled) for x in high if x.priority] == [
        ("HIGH", 2, 3)
    ]


def test_recent_window_counts_successes_and_their_wait(app: App) -> None:
    @app.task(name="quick")
    def quick() -> None:
        pass

    app.enqueue_many([JobSpec("quick", queue="flow")] * 4)
    drain(app, queues=["flow"])
    [total] = [x for x in app.store.queue_lines(300) if x.queue == "flow" and x.priority is None]
    assert total.succeeded == 4
    assert total.wait_p50_s is not None and 0 <= total.wait_p50_s <= total.wait_p95_s  # type: ignore[operator]
    count = metrics.REGISTRY.get_sample_value("tailrace_job_wait_seconds_count", {"queue": "flow"})
    assert count is not None and count >= 4


def test_cancel_by_filter_cancels_waiting_jobs_of_that_queue_only(app: App) -> None:
    mine = app.enqueue_many([JobSpec("x", queue="cut")] * 3)
    other = app.enqueue("x", queue="keep")
    assert app.store.jobs_count_capped(JobFilter(queue="cut"), cap=2) == 2
    assert app.store.jobs_cancel_where(JobFilter(queue="cut")) == 3
    assert {app.job(i).state for i in mine} == {JobState.CANCELLED}
    assert app.job(other).state is JobState.PENDING


def test_future_jobs_are_not_pending_and_known_queues_export_zero(app: App) -> None:
    app.enqueue_many([JobSpec("x", queue="later", priority="CRITICAL", run_at=LATER)] * 5)
    app.queue_pause("quiet")  # known, never had a job
    registry = CollectorRegistry()
    registry.register(metrics.QueueCollector(app.store))
    text = generate_latest(registry).decode()
    assert 'tailrace_queue_depth{priority="critical",queue="later",state="scheduled"} 5.0' in text
    assert 'tailrace_queue_depth{priority="critical",queue="later",state="pending"}' not in text
    assert 'tailrace_queue_depth{priority="critical",queue="quiet",state="pending"} 0.0' in text
    assert 'tailrace_dead_letter_depth{queue="quiet"} 0.0' in text
    # once remembered, a queue keeps its series after its jobs are gone
    assert app.store.queues_remember() >= 1
    app.store.jobs_cancel_where(JobFilter(queue="later"))
    text = generate_latest(registry).decode()
    assert 'tailrace_queue_depth{priority="critical",queue="later",state="scheduled"} 0.0' in text
    assert 'tailrace_dead_letter_depth{queue="later"} 0.0' in text


def test_a_running_worker_is_listed_and_leaves_when_it_stops(
    app: App, background_worker: Callable[..., Worker]
) -> None:
    worker = background_worker(app, queues=["seen"], concurrency=3, heartbeat_s=0.2)
    wait_until(lambda: any(w.id == worker.id for w in app.store.workers_list()), 10)
    [me] = [w for w in app.store.workers_list() if w.id == worker.id]
    assert me.queues == ["seen"] and me.concurrency == 3 and me.in_flight == 0
    assert me.to_dict()["alive"] is True
    assert me.pool is None


def test_a_worker_is_listed_with_its_pool(
    app: App, background_worker: Callable[..., Worker]
) -> None:
    worker = background_worker(app, queues=["seen"], pool="etl", heartbeat_s=0.2)
    wait_until(lambda: any(w.id == worker.id for w in app.store.workers_list()), 10)
    [me] = [w for w in app.store.workers_list() if w.id == worker.id]
    assert (me.pool, me.to_dict()["pool"]) == ("etl", "etl")
    worker.stop()
    wait_until(lambda: all(w.id != worker.id for w in app.store.workers_list()), 20)


def test_history_writes_one_row_per_queue_a_minute(app: App) -> None:
    app.enqueue_many([JobSpec("x", queue="hist")] * 2)
    assert app.store.history_roll(3600) is True
    assert app.store.history_roll(3600) is False  # this minute is written
    [point] = [p for p in app.store.history_read(600) if p.queue == "hist"]
    assert (point.pending, point.scheduled) == (2, 0)


def test_history_counts_each_finished_job_in_the_row_of_its_minute_only(
    app: App, database_url: str
) -> None:
    """A row stands at the start of a minute and counts the jobs finished in the minute
    before it, whole: the jobs finished since that start belong to the next row (counting
    "the last 60 s" at whatever second the roll ran counted them in two rows)."""

    @app.task(name="quick")
    def quick() -> None:
        pass

    ids = app.enqueue_many([JobSpec("quick", queue="hist2")] * 3)
    drain(app, queues=["hist2"])
    app.enqueue("quick", queue="hist2", run_at=LATER)  # the queue has a row whatever it counts
    # the worker's maintenance may have written this minute's row already (before the jobs
    # finished): the row written after them is the one to check
    with Database(database_url) as db:
        db.execute("DELETE FROM tailrace_queue_history")
    assert app.store.history_roll(3600) is True
    [point] = [p for p in app.store.history_read(600) if p.queue == "hist2"]
    finished = [app.job(i).finished_at for i in ids]
    assert all(f is not None for f in finished)
    at = point.at.timestamp()
    oracle = sum(1 for f in finished if f is not None and at - 60 <= f.timestamp() < at)
    assert point.succeeded == oracle, (point, finished)
