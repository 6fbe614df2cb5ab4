"""Task names as users write them: the short name of a task resolves to the registered one,
an enqueuer that knows its tasks refuses a name none of them answers to, and a job whose task
a worker does not know is dead at once with the reason (its retries are not burnt)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tailrace import App, JobState, UnknownTaskError

from .conftest import drain


def _register_export(app: App, ran: list[str]) -> None:
    @app.task(priority="LOW", max_attempts=7)
    def export(table: str) -> None:
        ran.append(table)


def test_short_name_enqueues_the_registered_task(app: App) -> None:
    ran: list[str] = []
    _register_export(app, ran)
    (full,) = app.tasks
    assert full.endswith(".export") and full != "export"

    job_id = app.enqueue("export", {"table": "orders"})
    job = app.job(job_id)
    # stored under the registered name, with that task's options
    assert (job.task, job.max_attempts, job.priority.name) == (full, 7, "LOW")
    drain(app)
    assert app.job(job_id).state is JobState.SUCCEEDED
    assert ran == ["orders"]


def test_periodic_accepts_the_short_name(app: App) -> None:
    _register_export(app, [])
    schedule = app.periodic("0 2 * * *", "export", args={"table": "events"})
    assert schedule.task == next(iter(app.tasks))


def test_unknown_name_is_refused_at_enqueue_when_the_app_knows_its_tasks(app: App) -> None:
    _register_export(app, [])
    with pytest.raises(UnknownTaskError, match=r"no task named 'exprot'.*\.export"):
        app.enqueue("exprot")
    with pytest.raises(UnknownTaskError, match="no task named 'exprot'"):
        app.periodic("* * * * *", "exprot")
    assert app.jobs() == [], "nothing may be enqueued"


def test_ambiguous_short_name_is_refused(app: App) -> None:
    @app.task(name="billing.export")
    def export_a() -> None: ...

    @app.task(name="crm.export")
    def export_b() -> None: ...

    with pytest.raises(UnknownTaskError, match=r"ambiguous.*billing\.export, crm\.export"):
        app.enqueue("export")


def test_an_app_without_tasks_enqueues_by_name_and_the_worker_resolves_it(
    app: App, request_close: Callable[[App], None]
) -> None:
    producer = App(app.database_url)  # a web app that only enqueues, by name
    request_close(producer)
    job_id = producer.enqueue("export", {"table": "orders"})
    assert app.job(job_id).task == "export"

    ran: list[str] = []
    _register_export(app, ran)
    drain(app)
    assert app.job(job_id).state is JobState.SUCCEEDED
    assert ran == ["orders"]


def test_unchecked_app_enqueues_tasks_only_other_workers_know(
    app: App, request_close: Callable[[App], None]
) -> None:
    producer = App(app.database_url, check_task_names=False)
    request_close(producer)
    _register_export(producer, [])
    job_id = producer.enqueue("resize_image")
    assert app.job(job_id).task == "resize_image"


def test_a_job_of_an_unknown_task_is_dead_at_once_with_the_reason(
    app: App, request_close: Callable[[App], None]
) -> None:
    producer = App(app.database_url)
    request_close(producer)
    job_id = producer.enqueue("no_such_task", max_attempts=5)
    _register_export(app, [])
    drain(app)
    job = app.job(job_id)
    assert job.state is JobState.DEAD
    assert job.attempts == 1, "one attempt, not five: the others would fail the same way"
    (error,) = job.errors
    assert error["error"].startswith("UnknownTaskError: no task named 'no_such_task'")
    assert ".export" in error["error"], "the error lists the tasks the worker has"
    assert f"tailrace jobs replay {job_id}" in error["error"]
