"""Bad input at the edges: the CLI refuses it with one clear line; a worker records what went
wrong with a job (unknown task, exception, timeout) and goes on with the next one."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tailrace import JobState, Priority

from .support import APP_SPEC, Harness, wait_until


def test_enqueue_with_args_that_are_not_json_exits_2(harness: Harness) -> None:
    h = harness
    bad = h.cli("jobs", "enqueue", "record", "--args", "not json")
    assert bad.returncode == 2, (bad.stdout, bad.stderr)
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one error line, got:\n{bad.stderr}"
    assert lines[0].startswith("error: ")
    assert "--args" in lines[0] and "JSON" in lines[0], lines[0]
    assert bad.stdout == ""
    assert sum(h.counts().values()) == 0, "nothing may be enqueued"

    # the same command with good JSON works, so the refusal was about the JSON
    good = h.cli("jobs", "enqueue", "record", "--args", '{"n": 1}', "--priority", "high")
    assert good.returncode == 0, good.stderr
    job = h.job(int(good.stdout.strip()))
    assert (job.task, job.args, job.priority) == ("record", {"n": 1}, Priority.HIGH)

    missing = h.cli("jobs", "show", str(job.id + 1000))
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"error: no job with id {job.id + 1000}"


def test_bad_priority_filter_is_a_usage_error(sqlite_harness: Harness) -> None:
    for how in ({"WORKER_PRIORITY_FILTER": "CRITICAL,URGENT"}, None):
        extra = () if how else ("--priorities", "CRITICAL,URGENT")
        result = sqlite_harness.cli("--app", APP_SPEC, "worker", "--burst", *extra, env=how)
        assert result.returncode == 2, (how, result.stderr)
        assert "URGENT" in result.stderr and "--priorities" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
        assert "worker started" not in result.stderr


def test_burst_worker_with_nothing_to_do_exits_0(sqlite_harness: Harness) -> None:
    for _ in range(10):
        result = sqlite_harness.cli("--app", APP_SPEC, "worker", "--burst", "--poll", "0.2")
        assert result.returncode == 0, result.stdout + result.stderr
        assert '"message":"worker stopped"' in result.stderr


def test_unknown_task_is_recorded_and_the_worker_goes_on(harness: Harness) -> None:
    h = harness
    w = h.start_worker("--poll", "0.2")
    h.wait_started(w)
    # enqueued by name from a CLI that knows no tasks, as any producer may do
    enqueued = h.cli("jobs", "enqueue", "no_such_task", "--max-attempts", "1")
    assert enqueued.returncode == 0, enqueued.stderr
    unknown_id = int(enqueued.stdout)
    h.wait_state([unknown_id], JobState.DEAD, 15, "the unknown task's job")
    good_id = h.app.enqueue("record")
    h.wait_state([good_id], JobState.SUCCEEDED, 15, "the job after the unknown one")

    job = h.job(unknown_id)
    assert job.attempts == 1
    assert len(job.errors) == 1, job.errors
    error = job.errors[0]["error"]
    assert error.startswith("UnknownTaskError: no task named 'no_such_task'"), error
    assert "record" in error, "the error lists the tasks the worker does have"
    assert h.ids("runs") == [good_id]
    assert w.alive(), w.tail()


def test_a_raising_task_records_its_traceback(harness: Harness) -> None:
    h = harness
    w = h.start_worker("--poll", "0.2")
    h.wait_started(w)
    boom_id = h.app.enqueue("boom", {"message": "kaboom-17"}, max_attempts=2)
    h.wait_state([boom_id], JobState.DEAD, 20, "the raising job")
    after_id = h.app.enqueue("record")
    h.wait_state([after_id], JobState.SUCCEEDED, 15, "the job after the raising one")

    job = h.job(boom_id)
    assert job.attempts == 2
    assert h.ids("started") == [boom_id, boom_id]
    assert [e["attempt"] for e in job.errors] == [1, 2]
    for e in job.errors:
        assert e["error"] == "ValueError: kaboom-17"
        tb = e["traceback"]
        assert tb and tb.startswith("Traceback (most recent call last):"), tb
        assert "tasks_app.py" in tb and "in boom" in tb and "raise ValueError(message)" in tb
        assert tb.rstrip().endswith("ValueError: kaboom-17")

    shown = h.cli("jobs", "show", str(boom_id), "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["errors"] == job.errors
    assert w.alive(), w.tail()


@pytest.mark.slow
def test_timed_out_tasks_record_job_timeout_and_the_worker_goes_on(harness: Harness) -> None:
    h = harness
    w = h.start_worker("--poll", "0.2")
    h.wait_started(w)
    ids = {}
    for task in ("hang_async", "hang_sync"):
        # through a CLI that loads the app, so the task's own timeout=0.5 is applied
        r = h.cli("--app", APP_SPEC, "jobs", "enqueue", task, "--max-attempts", "1")
        assert r.returncode == 0, r.stderr
        ids[task] = int(r.stdout)
        assert h.job(ids[task]).timeout_s == 0.5
    h.wait_state(list(ids.values()), JobState.DEAD, 15, "the hanging jobs")

    for task, job_id in ids.items():
        job = h.job(job_id)
        assert len(job.errors) == 1, job.errors
        assert (
            job.errors[0]["error"]
            == f"JobTimeoutError: task {task!r} ran past its timeout of 0.5 s"
        )
        assert job.started_at is not None and job.finished_at is not None
        assert job.finished_at - job.started_at < timedelta(seconds=5), job
    assert sorted(h.ids("started")) == sorted(ids.values())
    assert h.ids("finished") == []  # the async one was cancelled; the sync one still sleeps

    # the worker goes on: an async job and a sync one (on another pool thread) both run
    after = [h.app.enqueue("record"), h.app.enqueue("slow_sync", {"seconds": 0})]
    h.wait_state(after, JobState.SUCCEEDED, 15, "jobs after the timeouts")
    assert h.ids("runs") == [after[0]]
    assert h.ids("finished") == [after[1]]
    assert w.alive(), w.tail()


def test_a_hung_sync_task_does_not_starve_the_next_sync_job(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    w = h.start_worker("-c", "1", "--poll", "0.2")
    h.wait_started(w)
    hung = h.app.enqueue("hang_sync", {"seconds": 20}, timeout=0.5, max_attempts=1)
    h.wait_state([hung], JobState.DEAD, 10, "the hanging job")
    nxt = h.app.enqueue("slow_sync", {"seconds": 0})
    wait_until(
        lambda: nxt in h.ids("finished"),
        5,
        lambda: f"the next sync job has not run: {h.job(nxt)}\n{w.tail()}",
    )
