"""Workers that die, and databases that drop them: no job is lost, none runs twice
unless its first run really was cut short."""

from __future__ import annotations

import signal
from typing import Any

import psycopg
import pytest

from tailrace import JobSpec, JobState
from tests.services import PG_BASE_URL

from .support import Harness, duplicates, wait_until


def worker_id(w: Any) -> str:
    started = w.logged("worker started")
    assert started, w.tail()
    return str(started[0]["worker_id"])


@pytest.mark.slow
def test_sigkilled_worker_job_reruns_after_lease_expiry(harness: Harness) -> None:
    h = harness
    first = h.start_worker("--lease", "2", "--poll", "0.2", name="killed")
    h.wait_started(first)
    slow_id = h.app.enqueue("slow", {"seconds": 3})
    alongside = h.app.enqueue_many(JobSpec("record", {"n": n}) for n in range(20))

    # the slow job is running and the quick ones are done and reported: kill now
    wait_until(lambda: slow_id in h.ids("started"), 15, lambda: f"slow never started\n{h.tails()}")
    h.wait_state(alongside, JobState.SUCCEEDED, 15, "jobs enqueued with the slow one")
    assert h.job(slow_id).state is JobState.RUNNING
    killed_id = worker_id(first)
    first.send(signal.SIGKILL)
    assert first.wait_exit(5) == -signal.SIGKILL
    assert h.job(slow_id).state is JobState.RUNNING  # nobody knows yet

    second = h.start_worker("--lease", "2", "--poll", "0.2", name="survivor")
    h.wait_started(second)
    later = h.app.enqueue_many(JobSpec("record", {"n": n}) for n in range(20))
    h.wait_state([slow_id], JobState.SUCCEEDED, 25, "the killed worker's job")
    h.wait_state(later, JobState.SUCCEEDED, 10, "jobs enqueued after the kill")

    job = h.job(slow_id)
    assert job.attempts == 2
    assert job.worker_id == worker_id(second)
    assert len(job.errors) == 1, job.errors
    lost = job.errors[0]
    assert lost["error"].startswith("LeaseLostError"), lost
    assert lost["attempt"] == 1
    assert lost["worker_id"] == killed_id
    assert h.ids("started") == [slow_id, slow_id]
    assert h.ids("finished") == [slow_id]  # the first run never got to finish

    runs = h.ids("runs")
    assert not duplicates(runs), duplicates(runs)
    assert sorted(runs) == sorted(alongside + later)
    assert all(j.attempts == 1 for j in h.jobs(alongside + later))
    assert second.alive(), second.tail()


def _backends(admin: psycopg.Connection[Any], application_name: str) -> set[int]:
    rows = admin.execute(
        "SELECT pid FROM pg_stat_activity"
        " WHERE application_name = %s AND datname = current_database()"
        "   AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
        (application_name,),
    ).fetchall()
    return {r[0] for r in rows}


def _terminate(admin: psycopg.Connection[Any], application_name: str) -> set[int]:
    rows = admin.execute(
        "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE application_name = %s AND datname = current_database()"
        "   AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
        (application_name,),
    ).fetchall()
    return {pid for pid, ok in rows if ok}


# a worker holds four connections: one claims, one completes, one listens, one maintains
WORKER_CONNECTIONS = 4


@pytest.mark.postgres
@pytest.mark.slow
def test_worker_survives_its_connections_being_terminated(pg_harness: Harness) -> None:
    h = pg_harness
    name = h.application_name
    w = h.start_worker("-c", "4", "--lease", "5", "--poll", "0.5")
    h.wait_started(w)
    with psycopg.connect(PG_BASE_URL, autocommit=True) as admin:

        def connected(exclude: set[int]) -> set[int] | None:
            pids = _backends(admin, name)
            return pids if len(pids) == WORKER_CONNECTIONS and not pids & exclude else None

        pids = wait_until(
            lambda: connected(set()), 10, lambda: f"worker connections: {_backends(admin, name)}"
        )

        # 1. while it works through a stream of jobs
        stream = h.app.enqueue_many(JobSpec("slow", {"seconds": 0.2}) for _ in range(40))
        wait_until(lambda: len(h.ids("started")) >= 8, 15, lambda: f"no progress\n{h.tails()}")
        assert len(h.ids("finished")) < len(stream), "the stream ended before the kill"
        killed = _terminate(admin, name)
        assert killed == pids, f"terminated {killed}, the worker had {pids}"
        more = h.app.enqueue_many(JobSpec("record", {"n": n}) for n in range(50))
        h.wait_state(stream, JobState.SUCCEEDED, 30, "jobs running when connections died")
        h.wait_state(more, JobState.SUCCEEDED, 15, "jobs enqueued after the connections died")
        pids = wait_until(
            lambda: connected(killed),
            10,
            lambda: (
                f"worker did not reconnect: {_backends(admin, name)}, killed {killed}\n" + w.tail()
            ),
        )

        # 2. while idle, waiting for notifications: it must still hear about new jobs
        killed = _terminate(admin, name)
        assert killed == pids
        idle = h.app.enqueue_many(JobSpec("record", {"n": n}) for n in range(20))
        h.wait_state(idle, JobState.SUCCEEDED, 15, "jobs enqueued after an idle disconnect")
        wait_until(lambda: connected(killed), 10, lambda: f"no reconnect\n{w.tail()}")

    assert w.alive(), f"worker died\n{w.tail()}"
    # the store noticed the dead connections and replaced them (the listener does so quietly)
    assert len(w.logged("database connection lost, reconnecting")) >= 2, w.tail()
    started = h.ids("started")
    assert not duplicates(started), f"ran twice: {duplicates(started)}"
    assert sorted(started) == sorted(stream)
    assert sorted(h.ids("finished")) == sorted(stream)
    runs = h.ids("runs")
    assert not duplicates(runs), f"ran twice: {duplicates(runs)}"
    assert sorted(runs) == sorted(more + idle)
