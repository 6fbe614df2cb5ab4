"""What an operator of the priority-job framework sets: capacity per priority, retry attempts
on the worker, a pause switch per worker pool that also holds schedule ticks back, and the
aging of priorities per queue. On SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

import pytest

from tailrace import App, JobSpec, JobState, Priority, QueueFullError, RetryPolicy, Worker
from tailrace.engine.jobs import JobFilter
from tailrace.engine.maintenance import Maintenance
from tests.conformance.conftest import drain
from tests.waiting import wait_until

ALL = list(Priority)


def test_a_queue_full_of_bulk_jobs_still_takes_critical_ones(app: App) -> None:
    """The queue's own cap counts, for each job, only the jobs as urgent or more."""
    app.queue_capacity("work", 20)
    app.enqueue_many([JobSpec("t", queue="work", priority="BULK")] * 20)  # COPY path
    with pytest.raises(QueueFullError, match="queue 'work' is full: 20 jobs"):
        app.enqueue("t", queue="work", priority="BULK")
    critical = app.enqueue("t", queue="work", priority="CRITICAL")
    assert app.job(critical).priority is Priority.CRITICAL
    app.enqueue_many([JobSpec("t", queue="work", priority="CRITICAL")] * 18)
    # CRITICAL jobs alone now fill the cap: the next one is refused, and so is any HIGH one
    # (the BULK jobs do not count against either)
    with pytest.raises(QueueFullError, match="19 jobs"):
        app.enqueue_many([JobSpec("t", queue="work", priority="CRITICAL")] * 2)
    with pytest.raises(QueueFullError):
        app.enqueue_many([JobSpec("t", queue="work", priority="HIGH")] * 2)
    app.enqueue("t", queue="work", priority="HIGH")  # 20 as urgent as HIGH: exactly the cap


def test_capacity_per_priority_from_the_environment(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBS_QUEUE_CAPACITY_BULK", "30")
    monkeypatch.setenv("JOBS_QUEUE_CAPACITY_CRITICAL", "5")
    with App(database_url) as app:
        app.enqueue_many([JobSpec("t", priority="BULK")] * 30)  # a BULK flood, by COPY
        with pytest.raises(QueueFullError, match="full for BULK jobs: 30 jobs"):
            app.enqueue("t", priority="BULK")
        with pytest.raises(QueueFullError, match="full for BULK jobs"):
            app.enqueue_many([JobSpec("t", priority="BULK")] * 20)
        # CRITICAL has its own room, untouched by the flood
        for _ in range(5):
            app.enqueue("t", priority="CRITICAL")
        with pytest.raises(QueueFullError, match="full for CRITICAL jobs: 5 jobs"):
            app.enqueue("t", priority="CRITICAL")
        app.enqueue("t", priority="DEFAULT")  # no cap for DEFAULT
        # per queue: another queue has room for its own
        app.enqueue("t", priority="CRITICAL", queue="other")
        counts = {s.priority: s.count for s in app.stats() if s.queue == "default"}
        assert counts == {Priority.CRITICAL: 5, Priority.DEFAULT: 1, Priority.BULK: 30}


def test_a_stored_cap_per_priority_wins_over_the_environment(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBS_QUEUE_CAPACITY_HIGH", "1")
    with App(database_url) as app:
        app.queue_capacity("q", 3, "HIGH")
        (info,) = [q for q in app.queues() if q.name == "q"]
        assert info.capacities == {Priority.HIGH: 3} and info.capacity is None
        for _ in range(3):
            app.enqueue("t", queue="q", priority="HIGH")
        with pytest.raises(QueueFullError, match="for HIGH jobs: 3 jobs"):
            app.enqueue("t", queue="q", priority="HIGH")
        app.queue_capacity("q", None, "HIGH")  # back to the environment's 1
        with pytest.raises(QueueFullError, match="capacity 1"):
            app.enqueue("t", queue="q", priority="HIGH")


def test_retry_attempts_set_where_the_worker_runs_take_effect(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = RetryPolicy(base_s=0.01, max_s=0.02)
    with App(database_url, retry=fast) as producer:
        producer.check_task_names = False

        @producer.task(name="capped", max_attempts=3)
        def capped_there() -> None: ...

        failing = producer.enqueue("flaky", priority="CRITICAL")  # stored: 5 attempts
        capped = producer.enqueue("capped", priority="CRITICAL")  # stored: the task's 3
        assert producer.job(failing).max_attempts == 5
    monkeypatch.setenv("JOBS_RETRY_MAX_ATTEMPTS_CRITICAL", "2")  # the worker's Deployment
    with App(database_url, retry=fast) as app:
        runs: list[str] = []

        @app.task(name="flaky")
        def flaky() -> None:
            runs.append("flaky")
            raise RuntimeError("down")

        @app.task(name="capped", max_attempts=3)  # a task's own setting is kept
        def capped_task() -> None:
            runs.append("capped")
            raise RuntimeError("down")

        drain(app)
        dead = app.job(failing)
        assert dead.state is JobState.DEAD
        # stored with it: the dashboard says 2 of 2, and a reaper would judge by 2
        assert (dead.attempts, dead.max_attempts) == (2, 2)
        assert (runs.count("flaky"), runs.count("capped")) == (2, 3)
        assert app.job(capped).state is JobState.DEAD


def test_a_paused_pool_claims_nothing_and_other_pools_go_on(app: App) -> None:
    job_id = app.enqueue("t")
    app.pool_pause("batch")
    assert [(p.name, p.paused) for p in app.pools()] == [("batch", True)]
    assert app.store.jobs_claim("w1", 10, 30, None, ALL, pool="batch") == []
    other = app.store.jobs_claim("w2", 10, 30, None, ALL, pool="online")
    assert [j.id for j in other] == [job_id]
    second = app.enqueue("t")
    app.pool_resume("batch")
    assert [j.id for j in app.store.jobs_claim("w1", 10, 30, None, ALL, pool="batch")] == [second]


def test_a_worker_in_a_paused_pool_waits_and_resumes_without_restart(
    app: App,
    background_worker: Callable[..., Worker],
    caplog: pytest.LogCaptureFixture,
) -> None:
    ran: list[int] = []

    @app.task(name="t")
    def t(n: int) -> None:
        ran.append(n)

    background_worker(app, pool="other", queues=["elsewhere"])  # the job is not for it
    wait_until(lambda: [p.name for p in app.pools()] == ["other"], what="the pool known")
    assert not app.pools()[0].paused
    app.pool_pause("etl")
    caplog.set_level(logging.INFO, logger="tailrace")
    background_worker(app, pool="etl", maintenance_s=0.05)
    job_id = app.enqueue("t", {"n": 1})
    wait_until(
        lambda: any(r.getMessage() == "worker pool paused" for r in caplog.records),
        what="the worker to see its pool paused",
    )
    # it saw the pause; several claim rounds (poll 0.05 s) later the job still waits
    import time

    time.sleep(0.5)  # not synchronisation: the window in which nothing may run
    assert app.job(job_id).state is JobState.PENDING and ran == []
    app.pool_resume("etl")
    wait_until(lambda: app.job(job_id).state is JobState.SUCCEEDED, what="the job to run")
    assert ran == [1]


def test_processing_disabled_at_start_claims_nothing(
    app: App,
    background_worker: Callable[..., Worker],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="tailrace")
    job_id = app.enqueue("t")
    worker = background_worker(app, enabled=False)
    wait_until(lambda: any("processing is disabled" in r.getMessage() for r in caplog.records))
    import time

    time.sleep(0.3)
    assert app.job(job_id).state is JobState.PENDING and worker.processed == 0


def _ticks(app: App) -> int:
    return len(app.jobs(JobFilter(task="tick"), limit=10_000))


def test_pausing_a_pool_holds_schedule_ticks_back(app: App) -> None:
    app.check_task_names = False
    app.periodic("* * * * * *", "tick")  # every second
    upkeep = Maintenance(app, app.store, 3600, pool="etl")
    app.pool_pause("etl")
    upkeep._cron_since -= timedelta(minutes=10)  # ten minutes go by while paused
    upkeep.tick()
    assert _ticks(app) == 0
    app.pool_resume("etl")
    upkeep.tick()
    # resumed: the ticks of the last pass at most, not six hundred missed ones
    assert _ticks(app) <= 2

    # without a pause, the same ten minutes would have fired every one of them
    unpaused = Maintenance(app, app.store, 3600, pool="etl")
    unpaused._cron_since -= timedelta(minutes=10)
    assert unpaused.fire_schedules() >= 590


def test_a_paused_queue_holds_its_schedule_ticks_back(app: App) -> None:
    app.check_task_names = False
    app.periodic("* * * * * *", "tick", queue="reports")
    upkeep = Maintenance(app, app.store, 3600)
    app.queue_pause("reports")
    upkeep._cron_since -= timedelta(minutes=10)
    assert upkeep.fire_schedules() == 0 and _ticks(app) == 0
    app.queue_resume("reports")
    upkeep.fire_schedules()
    assert _ticks(app) <= 2


def test_aging_is_set_per_queue(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAILRACE_QUEUE_AGING_S", "fifo=0, reports=600")
    with App(database_url, priority_aging_s=60) as app:
        assert (app.aging_s("fifo"), app.aging_s("reports"), app.aging_s("x")) == (0, 600, 60)
        for queue in ("fifo", "default"):
            app.enqueue("t", {"first": True}, queue=queue, priority="BULK")
            app.enqueue("t", {"first": False}, queue=queue, priority="CRITICAL")
        # one claim at a time: the first follows sort_at, first in first out where aging is 0
        first = {
            q: app.store.jobs_claim("w", 1, 30, [q], ALL)[0].priority for q in ("fifo", "default")
        }
        assert first == {"fifo": Priority.BULK, "default": Priority.CRITICAL}
        job = app.new_job("t", queue="reports", priority="BULK")
        assert (job.sort_at - job.run_at).total_seconds() == 4 * 600
        job = app.new_job("t", queue="fifo", priority="BULK")
        assert job.sort_at == job.run_at


def test_the_series_their_dashboard_queries_translate_to(app: App) -> None:
    """The rows of the metrics table: each of their series has the tailrace one named."""
    from tailrace.engine import metrics

    @app.task(name="refresh")
    def refresh(fail: bool) -> None:
        if fail:
            raise RuntimeError("no")

    app.queue_capacity("reporting_refresh", 100)  # a known queue: all its series, zero too
    app.enqueue("refresh", {"fail": False}, queue="reporting_refresh", priority="CRITICAL")
    app.enqueue("refresh", {"fail": True}, queue="reporting_refresh", max_attempts=1)
    drain(app, queues=["reporting_refresh"])
    app.enqueue("refresh", {"fail": False}, queue="reporting_refresh", priority="CRITICAL")
    families = {
        f.name: f
        for f in metrics.QueueCollector.render(
            app.store.queue_depths(), [q.name for q in app.queues()]
        )
    }
    depth = {tuple(s.labels.values()): s.value for s in families["tailrace_queue_depth"].samples}
    # reporting_refresh_queue_depth{priority="critical"}
    assert depth[("reporting_refresh", "critical", "pending")] == 1
    assert depth[("reporting_refresh", "bulk", "pending")] == 0
    # reporting_refresh_dlq_depth
    (dead,) = families["tailrace_dead_letter_depth"].samples
    assert (dead.labels, dead.value) == ({"queue": "reporting_refresh"}, 1)
    # reporting_job_started / _completed / _failed / _duration_bucket
    labels = {"queue": "reporting_refresh", "task": "refresh"}
    sample = metrics.REGISTRY.get_sample_value
    for name in ("started_total", "completed_total", "failed_total"):
        assert (sample(f"tailrace_jobs_{name}", labels) or 0) >= 1, name
    assert sample("tailrace_job_duration_seconds_bucket", {**labels, "le": "+Inf"})


def test_concurrent_enqueuers_never_pass_a_cap_per_priority(database_url: str) -> None:
    """Eight threads, each with its own connection, race to fill a BULK cap of 20, one by one
    and in batches (COPY on PostgreSQL): the queue ends with exactly 20."""
    import threading

    with App(database_url, queue_capacity={"BULK": 20}) as setup:
        setup.store.migrate()
    stored: list[int] = []
    lock = threading.Lock()

    def enqueue(batch: int) -> None:
        with App(database_url, queue_capacity={"BULK": 20}) as app:
            while True:
                try:
                    ids = app.enqueue_many([JobSpec("t", priority="BULK")] * batch)
                except QueueFullError:
                    if batch == 1:
                        return
                    batch = 1
                    continue
                with lock:
                    stored.extend(ids)

    threads = [threading.Thread(target=enqueue, args=(1 if i % 2 else 17,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    with App(database_url) as app:
        assert len(stored) == 20
        assert len(app.jobs(JobFilter(priority=Priority.BULK), limit=100)) == 20
