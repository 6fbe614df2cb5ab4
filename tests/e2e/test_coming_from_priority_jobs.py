"""The migration recipe of docs/coming-from/priority-job-framework.md, step by step, on
PostgreSQL with real worker processes and the framework's own environment."""

from __future__ import annotations

import time

from tailrace import JobState, Priority

from .support import Harness, wait_until

# the worker Deployments' environment, as the framework's table has it (capacities lowered
# for BULK so that the test can fill it)
THEIR_ENV = {
    "QUARKUS_SCHEDULER_ENABLED": "true",
    "JOBS_QUEUE_CAPACITY_CRITICAL": "1000",
    "JOBS_QUEUE_CAPACITY_DEFAULT": "10000",
    "JOBS_QUEUE_CAPACITY_BULK": "3",
    "JOBS_RETRY_MAX_ATTEMPTS_CRITICAL": "2",
    "JOBS_RETRY_MAX_ATTEMPTS_DEFAULT": "3",
}


def test_the_migration_recipe(pg_harness: Harness) -> None:
    h = pg_harness
    # 1. the schema
    migrated = h.cli("db", "migrate", env=THEIR_ENV)
    assert migrated.returncode == 0, migrated.stderr

    # 2. the two pools: general (every priority) and critical (WORKER_PRIORITY_FILTER)
    general = h.start_worker("--pool", "general", "--poll", "0.2", env=THEIR_ENV, name="general")
    critical = h.start_worker(
        "--pool",
        "critical",
        "--poll",
        "0.2",
        env={**THEIR_ENV, "WORKER_PRIORITY_FILTER": "CRITICAL,HIGH"},
        name="critical",
    )
    h.wait_started(general, critical)

    # 3. pause the general pool without a restart: only the critical pool's priorities run
    assert h.cli("queues", "pause-pool", "general").returncode == 0
    wait_until(lambda: general.logged("worker pool paused"), 20, general.tail)
    ids = {p: h.app.enqueue("record", priority=p) for p in Priority}
    urgent = [ids[Priority.CRITICAL], ids[Priority.HIGH]]
    h.wait_state(urgent, JobState.SUCCEEDED, 20)
    rest = [ids[p] for p in (Priority.DEFAULT, Priority.LOW, Priority.BULK)]
    time.sleep(1.0)  # not synchronisation: the window in which paused work must not run
    assert {h.job(i).state for i in rest} == {JobState.PENDING}, h.tails()

    # 4. a BULK flood is capped (JOBS_QUEUE_CAPACITY_BULK, per queue) and does not block
    # CRITICAL
    for _ in range(3):
        assert (
            h.cli(
                "jobs",
                "enqueue",
                "record",
                "--queue",
                "exports",
                "--priority",
                "BULK",
                env=THEIR_ENV,
            ).returncode
            == 0
        )
    full = h.cli(
        "jobs", "enqueue", "record", "--queue", "exports", "--priority", "BULK", env=THEIR_ENV
    )
    assert full.returncode == 2 and "full for BULK jobs" in full.stderr, full.stderr
    assert (
        h.cli(
            "jobs",
            "enqueue",
            "record",
            "--queue",
            "exports",
            "--priority",
            "CRITICAL",
            env=THEIR_ENV,
        ).returncode
        == 0
    )

    # 5. the retry attempts set on the worker Deployment decide (2 for CRITICAL, not 5)
    failing = h.app.enqueue("boom", {"message": "card declined"}, priority="CRITICAL")
    assert h.job(failing).max_attempts == 5  # what the enqueuing process stored
    h.wait_state([failing], JobState.DEAD, 30)
    assert h.job(failing).attempts == 2

    # 6. resume: what waited runs
    assert h.cli("queues", "resume-pool", "general").returncode == 0
    h.wait_state(rest, JobState.SUCCEEDED, 20)
    assert general.alive() and critical.alive()
