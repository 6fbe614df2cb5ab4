"""Enqueue: one, many, inside the caller's transaction, dedup, capacity, bad arguments."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from tailrace import (
    App,
    InvalidArgumentsError,
    JobSpec,
    JobState,
    Priority,
    QueueFullError,
    TailraceError,
)
from tailrace.db.sqlite import path_from_url
from tests.conformance.conftest import drain


def test_enqueue_runs_sync_and_async_tasks_with_json_arguments(app: App) -> None:
    seen: list[object] = []

    @app.task
    def add(a: int, b: int) -> None:
        seen.append(a + b)

    @app.task
    async def greet(name: str) -> None:
        seen.append(f"hi {name}")

    ids = [app.enqueue(add, {"a": 1, "b": 2}), app.enqueue(greet, ["ada"])]
    assert app.job(ids[0]).args == {"a": 1, "b": 2}
    assert app.job(ids[1]).state is JobState.PENDING
    drain(app)
    assert sorted(map(str, seen)) == ["3", "hi ada"]
    assert {app.job(i).state for i in ids} == {JobState.SUCCEEDED}


@pytest.mark.parametrize("args", ["hello", "", 7, None, ["a"], {"k": "v"}, "null"])
def test_every_json_value_comes_back_as_enqueued(app: App, args: object) -> None:
    """A bare JSON string is the case a store could parse twice (found by the API fuzz)."""
    got: list[object] = []

    @app.task(name="echo")
    def echo(*a: object, **kw: object) -> None:
        got.append(a[0] if a else kw or None)

    job_id = app.enqueue("echo", args)
    assert app.job(job_id).args == args
    (listed,) = app.jobs()
    assert listed.args == args
    drain(app)
    assert app.job(job_id).state is JobState.SUCCEEDED, app.job(job_id).errors


def test_bulk_enqueue_returns_distinct_ids_and_every_job_runs(app: App) -> None:
    ran: list[int] = []

    @app.task(name="n")
    def n(i: int) -> None:
        ran.append(i)

    ids = app.enqueue_many(JobSpec("n", {"i": i}) for i in range(500))
    assert len(set(ids)) == 500
    assert [app.job(ids[i]).args["i"] for i in (0, 250, 499)] == [0, 250, 499]
    drain(app, concurrency=50)
    assert sorted(ran) == list(range(500))


def test_arguments_that_are_not_json_are_refused_with_a_clear_error(app: App) -> None:
    with pytest.raises(InvalidArgumentsError, match="not JSON-serialisable"):
        app.enqueue("t", {"when": object()})
    assert app.jobs() == []


def test_unknown_options_are_refused_by_name(app: App) -> None:
    """A misspelt option must fail loudly, not enqueue a job without it."""
    with pytest.raises(TypeError, match=r"enqueue\(\) got unknown option\(s\) queu; it takes "):
        app.enqueue("t", queu="payments")  # type: ignore[call-arg]
    with pytest.raises(TailraceError, match="on_full must be 'error' or 'wait', not 'block'"):
        app.enqueue("t", on_full="block")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"task\(\) got unknown option\(s\) max_attempt\b"):
        app.task(name="t", max_attempt=3)  # type: ignore[call-overload]
    assert app.jobs() == []
    assert app.tasks == {}


def _caller_connection(url: str) -> psycopg.Connection | sqlite3.Connection:
    if url.startswith("postgresql"):
        return psycopg.connect(url)
    return sqlite3.connect(path_from_url(url))


@pytest.mark.parametrize("commit", [True, False])
def test_enqueue_in_the_callers_transaction(app: App, database_url: str, commit: bool) -> None:
    app.store.migrate()  # the schema exists before the caller's transaction starts
    conn = _caller_connection(database_url)
    try:
        conn.execute("CREATE TABLE orders (id integer)")
        conn.execute("INSERT INTO orders VALUES (1)")
        job_id = app.enqueue("ship", {"order": 1}, connection=conn)
        conn.commit() if commit else conn.rollback()
    finally:
        conn.close()
    if commit:
        assert app.job(job_id).task == "ship"
    else:
        assert app.jobs() == []


def test_dedup_key_returns_the_live_job(app: App) -> None:
    first = app.enqueue("report", dedup_key="daily")
    assert app.enqueue("report", dedup_key="daily") == first
    app.cancel(first)
    # no longer live, and no window: a new job
    assert app.enqueue("report", dedup_key="daily") != first


def test_dedup_window_covers_finished_jobs(app: App) -> None:
    first = app.enqueue("report", dedup_key="k", dedup_window=timedelta(hours=24))
    app.cancel(first)
    assert app.enqueue("report", dedup_key="k", dedup_window=86400) == first


def test_concurrent_enqueuers_with_one_dedup_key_create_one_job(database_url: str) -> None:
    with App(database_url) as app:
        app.store.migrate()
    barrier = threading.Barrier(8)
    ids: list[int] = []

    def enqueue() -> None:
        with App(database_url) as app:
            app.store.migrate()  # connect before the race
            barrier.wait()
            ids.append(app.enqueue("once", dedup_key="same"))

    threads = [threading.Thread(target=enqueue) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ids) == 8 and len(set(ids)) == 1


def test_queue_capacity_refuses_or_waits(app: App, background_worker) -> None:  # type: ignore[no-untyped-def]
    app.queue_capacity("small", 3)
    for _ in range(3):
        app.enqueue("t", queue="small")
    with pytest.raises(QueueFullError, match="queue 'small' is full: 3 jobs"):
        app.enqueue("t", queue="small")
    with pytest.raises(QueueFullError):
        app.enqueue_many([JobSpec("t", queue="small")] * 2)
    assert len(app.jobs()) == 3

    @app.task(name="t")
    def t() -> None:
        pass

    background_worker(app, queues=["small"])
    # waits until the worker makes room
    job_id = app.enqueue("t", queue="small", on_full="wait", wait_timeout=10)
    assert app.job(job_id).queue == "small"
    app.queue_capacity("small", None)
    app.enqueue_many([JobSpec("t", queue="small")] * 10)


def test_defaults_follow_task_then_priority(app: App) -> None:
    @app.task(name="urgent", priority="CRITICAL", queue="payments")
    def urgent() -> None:
        pass

    job = app.job(app.enqueue("urgent"))
    assert (job.priority, job.queue, job.max_attempts) == (Priority.CRITICAL, "payments", 5)
    app.check_task_names = False  # a task only other workers know: the App's defaults
    job = app.job(app.enqueue("other", priority="LOW"))
    assert (job.priority, job.queue, job.max_attempts) == (Priority.LOW, "default", 3)
    job = app.job(app.enqueue("other", max_attempts=7))
    assert job.max_attempts == 7


def test_delayed_job_is_not_claimed_before_run_at(app: App) -> None:
    store = app.store
    store.migrate()  # the first call's migration must not eat the delay (0.4 s, more under load)
    job_id = app.enqueue("later", delay=2.0)
    assert store.jobs_claim("w", 10, 30, None, list(Priority)) == []
    run_at = app.job(job_id).run_at
    assert run_at > datetime.now(UTC)
    from tests.waiting import wait_until

    claimed = wait_until(
        lambda: store.jobs_claim("w", 10, 30, None, list(Priority)),
        10,
        "the delayed job to become claimable",
    )
    assert [c.id for c in claimed] == [job_id]
    assert datetime.now(UTC) >= run_at


def test_bulk_arguments_survive_every_awkward_character(app: App) -> None:
    awkward = [
        "tab\there",
        "back\\slash",
        "new\nline",
        "cr\rlf",
        'quote"s',
        "ünï©ødé ☃",
        "\\N",
        "nul-ish \\0",
        "",
    ]
    specs = [JobSpec("t", {"s": s, "n": [1, 2.5, None, True]}) for s in awkward] * 3
    ids = app.enqueue_many(specs)
    for job_id, spec in zip(ids, specs, strict=True):
        assert app.job(job_id).args == spec.args


def test_bulk_enqueue_stores_every_column_of_mixed_jobs_in_order(app: App) -> None:
    """Runs of different templates, dedup jobs between them and a resolved job: each id
    returned is the job asked for at that position, with every column as asked."""
    later = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    specs: list[JobSpec | object] = []
    for i in range(60):
        if i % 20 == 7:
            specs.append(JobSpec("d", {"i": i}, dedup_key=f"k{i}"))
        elif i % 3 == 0:
            specs.append(JobSpec("a", {"i": i}, queue="q1", priority="HIGH", max_attempts=9))
        else:
            specs.append(JobSpec("b", [i, "x\ty"], queue="q2", run_at=later))
    specs.append(app.new_job("c", {"i": 60}, queue="q3", timeout=2.5, priority="BULK"))
    ids = app.enqueue_many(specs)  # type: ignore[arg-type]
    assert len(set(ids)) == len(specs)
    for job_id, spec in zip(ids, specs, strict=True):
        job = app.job(job_id)
        if isinstance(spec, JobSpec):
            assert (job.task, job.args) == (spec.task, spec.args)
            if spec.task == "a":
                assert (job.queue, job.priority, job.max_attempts) == ("q1", Priority.HIGH, 9)
            if spec.task == "b":
                assert (job.queue, job.run_at) == ("q2", later)
            if spec.task == "d":
                assert job.dedup_key == spec.dedup_key
        else:
            assert (job.task, job.queue, job.timeout_s) == ("c", "q3", 2.5)
            assert job.priority is Priority.BULK
    # a second time, the dedup jobs are the live ones already there
    again = app.enqueue_many([JobSpec("d", {}, dedup_key="k7"), JobSpec("d", {}, dedup_key="k27")])
    assert again == [ids[7], ids[27]]


def test_migrate_is_idempotent(database_url: str) -> None:
    from tailrace.engine.store import open_store

    store = open_store(database_url)
    try:
        pending = store.migrations_pending()
        assert pending[:6] == [
            "engine/0001_init",
            "engine/0002_operator",
            "engine/0003_priority_caps_pools",
            "engine/0004_worker_pool",
            "engine/0005_drop_queue_claim_index",
            "reprocessing/0001_reprocessing",
        ]
        assert store.migrate() == pending
        assert store.migrate() == []
        assert store.migrations_pending() == []
    finally:
        store.close()
