"""Working: priorities and aging, filters, retries, dead letters, leases, cancel, pause."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from tailrace import App, JobContext, JobFilter, JobSpec, JobState, Priority, RetryPolicy
from tailrace.engine.jobs import Outcome
from tailrace.engine.maintenance import Maintenance
from tailrace.errors import JobCancelledError, LeaseLostError
from tests.conformance.conftest import drain
from tests.services import postgres_database
from tests.waiting import wait_until


def test_higher_priorities_run_first(app: App) -> None:
    order: list[str] = []

    @app.task(name="p")
    def p(name: str) -> None:
        order.append(name)

    for prio in reversed(Priority):
        app.enqueue("p", {"name": prio.name}, priority=prio)
    drain(app, concurrency=1, batch_size=1)
    assert order == [p.name for p in Priority]


def test_bulk_job_runs_while_critical_jobs_keep_arriving(database_url: str, request_close) -> None:  # type: ignore[no-untyped-def]
    # aging of 0.02 s per level: a BULK job overtakes CRITICAL ones enqueued 0.08 s after it
    app = App(database_url, priority_aging_s=0.02)
    request_close(app)
    flood = threading.Event()
    bulk_done = threading.Event()

    @app.task(name="critical")
    def critical() -> None:
        time.sleep(0.002)

    @app.task(name="bulk")
    def bulk() -> None:
        bulk_done.set()

    app.enqueue_many([JobSpec("critical", priority="CRITICAL")] * 50)
    app.enqueue("bulk", priority="BULK")

    def producer() -> None:
        with App(database_url, priority_aging_s=0.02) as producer_app:
            while not flood.is_set():
                producer_app.enqueue_many([JobSpec("critical", priority="CRITICAL")] * 20)
                time.sleep(0.01)

    thread = threading.Thread(target=producer)
    thread.start()
    from tailrace import Worker, WorkerOptions

    worker = Worker(app, WorkerOptions(concurrency=1, batch_size=1, poll_s=0.05))
    runner = threading.Thread(target=worker.run)
    started = time.monotonic()
    runner.start()
    try:
        assert bulk_done.wait(10), "the BULK job starved"
        waited = time.monotonic() - started
        still_arriving = thread.is_alive()
    finally:
        flood.set()
        thread.join()
        worker.stop()
        runner.join()
    assert still_arriving
    pending_critical = app.jobs(JobFilter(state=JobState.PENDING, task="critical"), limit=10)
    assert pending_critical, "the flood should still have had CRITICAL jobs waiting"
    assert waited < 5


def test_worker_priority_and_queue_filters(app: App) -> None:
    ran: list[tuple[str, str]] = []

    @app.task(name="t")
    def t(tag: str, queue: str) -> None:
        ran.append((tag, queue))

    for prio in Priority:
        for queue in ("a", "b"):
            app.enqueue("t", {"tag": prio.name, "queue": queue}, priority=prio, queue=queue)
    drain(app, priorities=[Priority.CRITICAL, Priority.HIGH], queues=["a"])
    assert sorted(ran) == [("CRITICAL", "a"), ("HIGH", "a")]
    assert len(app.jobs(JobFilter(state=JobState.PENDING))) == 8


def test_reprocessing_queues_are_worked_only_by_workers_that_name_them(app: App) -> None:
    from tailrace.engine.worker import WorkerOptions

    ran: list[str] = []

    @app.task(name="t")
    def t(queue: str) -> None:
        ran.append(queue)

    for queue in ("default", "reprocess:abc", "reprocessing"):
        app.enqueue("t", {"queue": queue}, queue=queue)
    claimed = app.store.jobs_claim("w", 10, 30, None, list(Priority))
    assert sorted(j.queue for j in claimed) == ["default", "reprocessing"]
    named = app.store.jobs_claim("w", 10, 30, ["reprocess:abc"], list(Priority))
    assert [j.queue for j in named] == ["reprocess:abc"]
    assert WorkerOptions().queues is None


def test_failed_attempts_are_retried_with_their_errors_kept(app: App) -> None:
    @app.task(name="flaky", pass_context=True)
    def flaky(ctx: JobContext) -> None:
        if ctx.attempt < 3:
            raise ConnectionError(f"attempt {ctx.attempt} failed")

    job_id = app.enqueue("flaky")
    drain(app)
    job = app.job(job_id)
    assert job.state is JobState.SUCCEEDED
    assert job.attempts == 3
    assert [e["error"] for e in job.errors] == [
        "ConnectionError: attempt 1 failed",
        "ConnectionError: attempt 2 failed",
    ]
    assert "raise ConnectionError" in job.errors[0]["traceback"]


def test_backoff_delays_the_retry(database_url: str, request_close) -> None:  # type: ignore[no-untyped-def]
    app = App(database_url, retry=RetryPolicy(base_s=30, jitter=0))
    request_close(app)

    @app.task(name="fails")
    def fails() -> None:
        raise RuntimeError("no")

    job_id = app.enqueue("fails")
    from tailrace import Worker, WorkerOptions

    worker = Worker(app, WorkerOptions(poll_s=0.05))
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        job = wait_until(
            lambda: (j := app.job(job_id)).state is JobState.FAILED and j,
            10,
            "the first attempt to fail",
        )
    finally:
        worker.stop()
        thread.join()
    assert 25 < (job.run_at - job.created_at).total_seconds() < 35


def test_exhausted_jobs_die_and_can_be_replayed_or_discarded(app: App) -> None:
    calls: list[int] = []

    @app.task(name="broken")
    def broken(n: int) -> None:
        calls.append(n)
        raise ValueError(f"broken {n}")

    ids = app.enqueue_many([JobSpec("broken", {"n": n}) for n in range(3)])
    critical = app.enqueue("broken", {"n": 9}, priority="CRITICAL")
    drain(app)
    assert len(calls) == 3 * 3 + 5  # CRITICAL gets 5 attempts, the rest 3
    dead = app.jobs(JobFilter(state=JobState.DEAD))
    assert {j.id for j in dead} == {*ids, critical}
    assert all(len(j.errors) == j.max_attempts for j in dead)

    assert app.replay(JobFilter(state=JobState.DEAD, ids=(ids[0],))) == 1
    replayed = app.job(ids[0])
    assert (replayed.state, replayed.attempts) == (JobState.PENDING, 0)
    drain(app)
    assert app.job(ids[0]).state is JobState.DEAD

    assert app.replay(JobFilter(state=JobState.DEAD, priority=Priority.CRITICAL)) == 1
    assert app.job(critical).state is JobState.PENDING
    assert app.discard(JobFilter(state=JobState.DEAD, task="broken")) == 3
    assert [j.id for j in app.jobs()] == [critical]


def test_unknown_task_and_timeouts_are_recorded_and_the_worker_lives_on(app: App) -> None:
    @app.task(name="hangs_async", timeout=0.2)
    async def hangs_async() -> None:
        await asyncio.sleep(60)

    @app.task(name="hangs_sync", timeout=0.2, pass_context=True)
    def hangs_sync(ctx: JobContext) -> None:
        ctx.cancelled.wait(60)  # a well-behaved sync task stops when asked

    @app.task(name="fine")
    def fine() -> None:
        pass

    # from a producer that knows no tasks (this App would refuse the name)
    with App(app.database_url) as producer:
        unknown = producer.enqueue("no_such_task", max_attempts=1)
    slow_a = app.enqueue("hangs_async", max_attempts=1)
    slow_s = app.enqueue("hangs_sync", max_attempts=1)
    good = app.enqueue("fine", priority="LOW")
    drain(app)
    assert (
        app.job(unknown)
        .errors[0]["error"]
        .startswith("UnknownTaskError: no task named 'no_such_task' is registered")
    )
    for job_id in (slow_a, slow_s):
        job = app.job(job_id)
        assert job.state is JobState.DEAD
        assert "JobTimeoutError: task" in job.errors[0]["error"]
        assert "timeout of 0.2 s" in job.errors[0]["error"]
    assert app.job(good).state is JobState.SUCCEEDED


def test_expired_lease_returns_the_job_and_counts_the_attempt(app: App) -> None:
    job_id = app.enqueue("t", max_attempts=2)
    store = app.store
    assert [j.id for j in store.jobs_claim("gone", 1, 0.05, None, list(Priority))] == [job_id]
    reaped = wait_until(store.leases_reap, 5, "the lease to expire")
    assert reaped == [(job_id, JobState.PENDING)]
    job = app.job(job_id)
    assert job.attempts == 1 and job.errors[0]["error"].startswith("LeaseLostError")
    # a late completion from the lost worker is ignored
    assert store.jobs_finish("gone", [Outcome(job_id, JobState.SUCCEEDED)]) == 0
    store.jobs_claim("gone-too", 1, 0.05, None, list(Priority))
    assert wait_until(store.leases_reap, 5, "the second lease to expire") == [
        (job_id, JobState.DEAD)
    ]


def test_healthy_long_job_is_not_rerun(app: App) -> None:
    runs: list[int] = []

    @app.task(name="long")
    async def long() -> None:
        runs.append(1)
        await asyncio.sleep(1.2)

    job_id = app.enqueue("long")
    drain(app, lease_s=0.4, heartbeat_s=0.1, maintenance_s=0.05)
    job = app.job(job_id)
    assert (job.state, job.attempts, len(runs)) == (JobState.SUCCEEDED, 1, 1)


def test_cancel_pending_at_once_and_running_cooperatively(app: App, background_worker) -> None:  # type: ignore[no-untyped-def]
    started = threading.Event()

    @app.task(name="loop_async")
    async def loop_async() -> None:
        started.set()
        await asyncio.sleep(60)

    @app.task(name="loop_sync", pass_context=True)
    def loop_sync(ctx: JobContext) -> None:
        while True:
            ctx.raise_if_cancelled()
            time.sleep(0.01)

    pending = app.enqueue("loop_async", delay=3600)
    assert app.cancel(pending).state is JobState.CANCELLED

    a = app.enqueue("loop_async")
    s = app.enqueue("loop_sync")
    background_worker(app, heartbeat_s=0.05)
    wait_until(
        lambda: app.job(a).state is JobState.RUNNING and app.job(s).state is JobState.RUNNING,
        10,
        "both jobs to run",
    )
    for job_id in (a, s):
        job = app.cancel(job_id)
        assert job.state is JobState.RUNNING and job.cancel_requested
    for job_id in (a, s):
        wait_until(
            lambda j=job_id: app.job(j).state is JobState.CANCELLED, 10, f"job {job_id} to stop"
        )
    assert "JobCancelledError" in app.job(s).errors[-1]["error"]


def test_a_task_whose_lease_ran_out_is_told_so(app: App, background_worker) -> None:  # type: ignore[no-untyped-def]
    stopped: list[JobCancelledError] = []
    started = threading.Event()

    @app.task(name="loop_sync", pass_context=True)
    def loop_sync(ctx: JobContext) -> None:
        started.set()
        try:
            while True:
                ctx.raise_if_cancelled()
                time.sleep(0.01)
        except JobCancelledError as exc:
            stopped.append(exc)
            raise

    job_id = app.enqueue("loop_sync", max_attempts=1)
    # renewals further apart than the lease, as for a worker frozen or cut off: the lease runs
    # out between two of them and the test reaps it (the worker's own reaper waits an hour)
    background_worker(app, lease_s=0.2, heartbeat_s=1.0, maintenance_s=3600)
    assert started.wait(10)
    wait_until(lambda: app.store.leases_reap() == [(job_id, JobState.DEAD)], 10, "the reap")
    wait_until(lambda: stopped, 10, "the task to be stopped")
    assert isinstance(stopped[0], LeaseLostError), stopped
    assert f"job {job_id} lost its lease" in str(stopped[0])
    assert app.job(job_id).errors[-1]["error"].startswith("LeaseLostError: the lease expired")


def test_paused_queue_is_not_worked_until_resumed(app: App) -> None:
    ran: list[int] = []

    @app.task(name="t")
    def t() -> None:
        ran.append(1)

    app.queue_pause("default")
    app.enqueue("t")
    assert app.store.jobs_claim("w", 10, 30, None, list(Priority)) == []
    assert [q.paused for q in app.queues()] == [True]
    app.queue_resume("default")
    drain(app)
    assert ran == [1]


def test_shutdown_releases_unfinished_jobs(app: App, background_worker) -> None:  # type: ignore[no-untyped-def]
    @app.task(name="forever")
    async def forever() -> None:
        await asyncio.sleep(60)

    job_id = app.enqueue("forever")
    worker = background_worker(app, shutdown_grace_s=0.1)
    wait_until(lambda: app.job(job_id).state is JobState.RUNNING, 10, "the job to start")
    worker.stop()
    job = wait_until(
        lambda: (j := app.job(job_id)).state is JobState.PENDING and j, 10, "the job to be released"
    )
    assert job.attempts == 0


def test_prune_deletes_old_finished_jobs_only(app: App) -> None:
    app.enqueue("ok")
    dead = app.enqueue("bad")
    waiting = app.enqueue("ok", delay=3600)
    # finish what is due now by hand: the delayed job would keep a burst worker waiting
    for job in app.store.jobs_claim("w", 10, 30, None, list(Priority)):
        state = JobState.SUCCEEDED if job.task == "ok" else JobState.DEAD
        app.store.jobs_finish("w", [Outcome(job.id, state)])
    assert app.prune(3600) == 0
    assert app.prune(0) == 1
    assert {j.id for j in app.jobs()} == {dead, waiting}
    assert app.prune(0, include_dead=True) == 1
    assert [j.id for j in app.jobs()] == [waiting]


def test_cron_tick_fires_once_across_workers(app: App, request_close) -> None:  # type: ignore[no-untyped-def]
    @app.task(name="tick")
    def tick() -> None:
        pass

    app.periodic("* * * * * *", "tick")  # every second
    first = Maintenance(app, app.store, 3600)
    other_store = app.open_store()
    request_close(other_store)
    second = Maintenance(app, other_store, 3600)
    from datetime import timedelta

    for m in (first, second):
        m._cron_since -= timedelta(seconds=5)  # both saw the same five ticks go by
    fired = first.fire_schedules() + second.fire_schedules()
    jobs = app.jobs(JobFilter(task="tick"))
    assert fired == len(jobs) >= 5
    assert len({j.run_at for j in jobs}) == len(jobs)


@pytest.mark.parametrize("expression", ["*/15 * * * *", "0 2 * * *"])
def test_periodic_accepts_cron_expressions(app: App, expression: str) -> None:
    assert app.periodic(expression, "t", name=expression).cron.expression == expression


def test_vacuum_runs_only_when_dead_rows_pile_up(database_url: str) -> None:
    if database_url.startswith("sqlite"):
        with App(database_url) as app:
            app.store.migrate()
            assert app.store.jobs_vacuum() is False  # SQLite reuses freed pages by itself
        return
    import psycopg

    # not the schema `database_url` names: a database of its own (see postgres_database)
    with postgres_database() as url, App(url) as app:
        app.store.migrate()
        assert app.store.jobs_vacuum() is False  # nothing to reclaim
        app.enqueue_many([JobSpec("t")] * 30_000)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DELETE FROM tailrace_jobs")
            # the statistics the decision reads are sent by the backend at the end of its work
            conn.execute("SELECT pg_stat_force_next_flush()")
        assert wait_until(app.store.jobs_vacuum, 10, "a vacuum of 30,000 dead rows")
        assert app.store.jobs_vacuum() is False
