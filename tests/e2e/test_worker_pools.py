"""The priority-job framework's switches on the real CLI: a worker pool paused and resumed
without a restart, QUARKUS_SCHEDULER_ENABLED=false at start, a cap per priority."""

from __future__ import annotations

import time

from tailrace import JobState, Priority

from .support import Harness, wait_until


def test_pause_pool_and_resume_pool_switch_a_running_worker(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    paused = h.cli("queues", "pause-pool", "etl")
    assert (paused.returncode, paused.stdout.strip()) == (0, "worker pool 'etl' paused")
    w = h.start_worker("--pool", "etl", "--poll", "0.1")
    h.wait_started(w)
    job_id = h.app.enqueue("record")
    wait_until(lambda: w.logged("worker pool paused"), 20, w.tail)
    time.sleep(1.0)  # not synchronisation: the window in which the job must not run
    assert h.job(job_id).state is JobState.PENDING, w.tail()
    listed = h.cli("queues", "pools", "--json")
    assert '"paused": true' in listed.stdout
    resumed = h.cli("queues", "resume-pool", "etl")
    assert resumed.returncode == 0, resumed.stderr
    h.wait_state([job_id], JobState.SUCCEEDED, 20)
    wait_until(lambda: w.logged("worker pool resumed"), 20, w.tail)
    assert w.alive()


def test_quarkus_scheduler_enabled_false_starts_a_worker_that_runs_nothing(
    sqlite_harness: Harness,
) -> None:
    h = sqlite_harness
    job_id = h.app.enqueue("record")
    w = h.start_worker("--poll", "0.1", env={"QUARKUS_SCHEDULER_ENABLED": "false"})
    h.wait_started(w)
    assert w.logged(
        "job processing is disabled (QUARKUS_SCHEDULER_ENABLED or TAILRACE_WORKER_ENABLED is "
        "false): this worker claims no job and fires no schedule until it restarts enabled; "
        "pause a pool to switch without a restart"
    )
    time.sleep(1.0)  # not synchronisation: the window in which the job must not run
    assert h.job(job_id).state is JobState.PENDING and w.alive()
    bad = h.start_worker(env={"QUARKUS_SCHEDULER_ENABLED": "maybe"}, name="bad")
    assert bad.wait_exit(20) == 2 and "expected true or false" in bad.text()


def test_capacity_per_priority_from_the_cli(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    set_ = h.cli("queues", "capacity", "work", "2", "--priority", "bulk")
    assert set_.stdout.strip() == "queue 'work' capacity for BULK jobs: 2", set_.stderr
    shown = h.cli("queues", "capacity", "work", "--priority", "BULK")
    assert shown.stdout.strip() == "queue 'work' capacity for BULK jobs: 2 jobs"
    env = h.cli(
        "queues", "capacity", "work", "--priority", "CRITICAL",
        env={"JOBS_QUEUE_CAPACITY_CRITICAL": "1000"},
    )  # fmt: skip
    assert env.stdout.strip() == "queue 'work' capacity for CRITICAL jobs: 1000 jobs"
    every = h.cli("queues", "capacity", "work", env={"JOBS_QUEUE_CAPACITY_CRITICAL": "1000"})
    assert every.stdout.splitlines() == [
        "queue 'work' capacity: unlimited",
        "  CRITICAL jobs: 1000 jobs (JOBS_QUEUE_CAPACITY_CRITICAL)",
        "  BULK jobs: 2 jobs",
    ], every.stdout
    for _ in range(2):
        h.app.enqueue("record", queue="work", priority=Priority.BULK)
    full = h.cli("jobs", "enqueue", "record", "--queue", "work", "--priority", "BULK")
    assert full.returncode == 2 and "full for BULK jobs" in full.stderr, full.stderr
    ok = h.cli("jobs", "enqueue", "record", "--queue", "work", "--priority", "CRITICAL")
    assert ok.returncode == 0, ok.stderr


def test_the_scheduler_check_says_when_the_pool_is_paused(sqlite_harness: Harness) -> None:
    """Their runbook's "Jobs Not Processing" reads the `scheduler` check of /q/health: a
    paused pool shows there, and a resume too."""
    import json
    import urllib.request

    from tests.services import free_port

    h = sqlite_harness
    port = free_port()
    w = h.start_worker("--pool", "etl", "--poll", "0.1", "--metrics-port", str(port))
    h.wait_started(w)

    def scheduler() -> dict[str, object]:
        url = f"http://127.0.0.1:{port}/q/health"
        with urllib.request.urlopen(url, timeout=2) as answer:
            checks = json.loads(answer.read())["checks"]
        return dict(next(c for c in checks if "scheduler" in c["name"])["data"])

    assert scheduler()["paused"] is False
    assert h.cli("queues", "pause-pool", "etl").returncode == 0
    assert scheduler()["paused"] is True
    assert h.cli("queues", "resume-pool", "etl").returncode == 0
    assert scheduler()["paused"] is False and w.alive()
