"""Engine workers through real PostgreSQL faults: a fast restart, a stop of some seconds then
a start, on a cluster the test owns. Workers are `tailrace worker` processes; each job's
effect is a line its handler appends to a file, so the test counts what ran.

What they guarantee (docs/architecture.md, "database faults"): workers outlive any outage;
every job runs; a job's completion is recorded once; a job runs again only if its lease
was reaped while its worker could not renew it (not the case here: no job runs twice).
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tailrace import JobSpec, JobState
from tests.e2e.support import Harness, duplicates
from tests.pg_cluster import Cluster, cluster_url, pg_cluster  # noqa: F401 - fixtures
from tests.waiting import wait_until

pytestmark = pytest.mark.slow

WORKERS = 4
JOBS = 20_000
OUTAGE_S = 5.0  # how long the server stays stopped: the fault itself, not a wait


@pytest.fixture
def harness(cluster_url: str, tmp_path: Path) -> Iterator[Harness]:  # noqa: F811
    h = Harness(cluster_url, tmp_path)
    try:
        yield h
    finally:
        h.close()


def _succeeded(h: Harness) -> int:
    return sum(n for state, n in h.counts().items() if state is JobState.SUCCEEDED)


def _all_alive(h: Harness) -> bool:
    dead = [w for w in h.workers if not w.alive()]
    assert not dead, "a worker exited:\n" + "\n".join(w.tail() for w in dead)
    return True


def test_workers_ride_out_a_restart_and_an_outage_and_run_every_job_once(
    harness: Harness,
    pg_cluster: Cluster,  # noqa: F811
) -> None:
    h = harness
    ids = h.app.enqueue_many([JobSpec("record", i) for i in range(JOBS)])
    workers = [h.start_worker("--concurrency", "16", "--batch-size", "50") for _ in range(WORKERS)]
    h.wait_started(*workers, timeout=60)

    wait_until(lambda: len(h.ids()) >= JOBS // 5, 120, "a fifth of the jobs to run")
    pg_cluster.restart()
    ran_at_restart = len(h.ids())

    wait_until(
        lambda: _all_alive(h) and len(h.ids()) >= ran_at_restart + JOBS // 5,
        120,
        "jobs to run after the restart",
    )
    pg_cluster.stop()
    ran_at_stop = len(h.ids())
    time.sleep(OUTAGE_S)  # the outage
    _all_alive(h)
    pg_cluster.start()

    wait_until(
        lambda: _all_alive(h) and _succeeded(h) == JOBS,
        300,
        lambda: f"every job to succeed ({h.counts()})\n{h.tails()}",
    )
    # the faults came while work remained, or they proved nothing
    assert ran_at_restart < JOBS and ran_at_stop < JOBS, (ran_at_restart, ran_at_stop)
    runs = h.ids()
    assert set(runs) == set(ids), f"{len(set(ids) - set(runs))} jobs never ran"
    assert duplicates(runs) == {}
    counts = h.counts()
    assert counts == Counter({JobState.SUCCEEDED: JOBS}), counts
    # and they logged the outage, without a line per attempt
    for w in workers:
        unreachable = w.logged("database connection lost, reconnecting")
        assert unreachable, f"{w.name} never noticed the outage\n{w.tail()}"
        assert len(unreachable) + len(w.logged("database still unreachable, reconnecting")) < 50


def test_an_idle_worker_outlives_a_stop_and_start(
    harness: Harness,
    pg_cluster: Cluster,  # noqa: F811
) -> None:
    h = harness
    worker = h.start_worker("--concurrency", "4")
    h.wait_started(worker, timeout=60)
    pg_cluster.stop()
    time.sleep(OUTAGE_S)  # the outage
    pg_cluster.start()
    job_id = h.app.enqueue("record", "after")
    wait_until(
        lambda: h.job(job_id).state is JobState.SUCCEEDED or not worker.alive(),
        120,
        "the job enqueued after the outage to run",
    )
    assert worker.alive(), worker.tail()
    assert h.ids() == [job_id]
    worker.send(signal.SIGTERM)
    assert worker.wait_exit(60) == 0, worker.tail()


@pytest.mark.parametrize("fault", ["stop", "freeze"])
def test_an_outage_longer_than_the_lease_reruns_nothing(
    harness: Harness,
    pg_cluster: Cluster,  # noqa: F811
    fault: str,
) -> None:
    """Every lease expires while the server is down; the live workers renew them when it is
    back, before anyone reaps them: no job starts twice, every job finishes once."""
    h = harness
    total = 300
    ids = h.app.enqueue_many([JobSpec("slow", 0.4) for _ in range(total)])
    args = ("--concurrency", "8", "--lease", "2", "--poll", "0.2")
    workers = [h.start_worker(*args) for _ in range(3)]
    h.wait_started(*workers, timeout=60)
    wait_until(lambda: len(h.ids("finished")) >= total // 4, 120, "a quarter of the jobs")
    if fault == "stop":
        pg_cluster.stop()
        time.sleep(6.0)  # the outage: three leases long
        pg_cluster.start()
    else:
        with pg_cluster.frozen():
            time.sleep(6.0)  # the freeze: three leases long
    wait_until(
        lambda: _all_alive(h) and _succeeded(h) == total,
        300,
        lambda: f"every job to succeed ({h.counts()})\n{h.tails()}",
    )
    started, finished = h.ids("started"), h.ids("finished")
    assert set(finished) == set(ids)
    assert duplicates(started) == {}, "jobs started twice"
    assert duplicates(finished) == {}
    assert all(not j.errors for j in h.jobs(ids)), "a lease was reaped"
