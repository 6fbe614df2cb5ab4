"""The first run of a worker and an enqueue from the command line: a worker with no tasks
refuses to start, ``--app`` may follow the command, and task names resolve (or are refused)
as the enqueuer's App knows them."""

from __future__ import annotations

from tailrace import JobState

from .support import APP_SPEC, Harness


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one error line, got:\n{stderr}"
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def test_a_worker_without_tasks_refuses_to_start(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    job_id = h.app.enqueue("record")
    result = h.cli("worker", "--burst")
    assert result.returncode == 2, result.stdout + result.stderr
    line = _one_error_line(result.stderr)
    assert "no tasks" in line and "--app" in line, line
    assert h.job(job_id).state is JobState.PENDING, "it must not touch the queue"
    assert h.job(job_id).attempts == 0


def test_app_option_after_the_command(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    job_id = h.app.enqueue("record")
    result = h.cli("worker", "--app", APP_SPEC, "--burst", "--poll", "0.2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert h.job(job_id).state is JobState.SUCCEEDED
    assert h.ids("runs") == [job_id]


def test_enqueue_by_function_name_resolves_to_the_registered_task(
    sqlite_harness: Harness,
) -> None:
    h = sqlite_harness
    # tasks_app registers record_run() under the name "record"
    result = h.cli("--app", APP_SPEC, "jobs", "enqueue", "record_run")
    assert result.returncode == 0, result.stderr
    assert h.job(int(result.stdout)).task == "record"


def test_enqueue_of_a_name_the_app_does_not_know_is_refused(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    result = h.cli("--app", APP_SPEC, "jobs", "enqueue", "recrod")
    assert result.returncode == 2, result.stdout + result.stderr
    line = _one_error_line(result.stderr)
    assert "'recrod'" in line and "record" in line, line
    assert sum(h.counts().values()) == 0, "nothing may be enqueued"
