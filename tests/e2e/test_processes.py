"""``tailrace worker -p N``: N forked worker processes under one command."""

from __future__ import annotations

import os
import signal

import httpx

from tailrace import JobFilter, JobSpec, JobState
from tests.services import free_port

from .support import Harness, duplicates, wait_until

JOBS = 2_000


def _children_started(h: Harness, n: int) -> list[int]:
    w = h.workers[-1]
    wait_until(
        lambda: len(w.logged("worker started")) >= n or not w.alive(),
        20,
        lambda: f"expected {n} 'worker started' lines\n{w.tail()}",
    )
    assert w.alive(), w.tail()
    pids = w.worker_pids()
    assert len(set(pids)) == n and w.pid not in pids, (w.pid, pids)
    return pids


def test_processes_share_the_jobs_and_run_each_once(harness: Harness) -> None:
    h = harness
    w = h.start_worker("-p", "2", "-c", "20", "--poll", "0.2")
    _children_started(h, 2)
    ids = h.app.enqueue_many(JobSpec("record", {"n": n}) for n in range(JOBS))
    wait_until(
        lambda: h.counts()[JobState.SUCCEEDED] == JOBS,
        30,
        lambda: f"states: {dict(h.counts())}\n{w.tail()}",
        interval=0.1,
    )
    runs = h.ids("runs")
    assert not duplicates(runs), duplicates(runs)
    assert sorted(runs) == sorted(ids)
    jobs = h.app.jobs(JobFilter(state=JobState.SUCCEEDED), limit=JOBS + 1)
    started_ids = {e["worker_id"] for e in w.logged("worker started")}
    assert {j.worker_id for j in jobs} == started_ids, "both children should have worked"
    assert {j.attempts for j in jobs} == {1}


def test_the_parents_metrics_count_the_jobs_of_every_child(pg_harness: Harness) -> None:
    h = pg_harness
    port = free_port()
    w = h.start_worker("-p", "2", "-c", "4", "--poll", "0.2", "--metrics-port", str(port))
    victim, _ = _children_started(h, 2)
    jobs = 200
    h.app.enqueue_many(JobSpec("record", {"n": n}) for n in range(jobs))
    wait_until(
        lambda: h.counts()[JobState.SUCCEEDED] == jobs,
        30,
        lambda: f"states: {dict(h.counts())}\n{w.tail()}",
        interval=0.1,
    )
    done = h.app.jobs(JobFilter(state=JobState.SUCCEEDED), limit=jobs + 1)
    by_child = {j.worker_id for j in done}
    assert len(by_child) == 2, "both children should have run jobs"

    def scraped() -> dict[str, float]:
        page = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        return {
            name: _sample(page, name)
            for name in (
                "tailrace_jobs_completed_total",
                "tailrace_jobs_started_total",
                "tailrace_job_duration_seconds_count",
            )
        }

    expected = {name: float(jobs) for name in scraped()}
    # a child slow to answer is left out of that scrape: poll
    wait_until(lambda: scraped() == expected, 10, lambda: f"{scraped()}\n{w.tail()}")
    # a child gone: the scrape still answers, promptly, with the other child's counts
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: not _running(victim), 10, w.tail)
    after = scraped()["tailrace_jobs_completed_total"]
    assert 0 < after < jobs, after


def _sample(page: str, name: str) -> float:
    """The sum of a family's series on a Prometheus text page."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in page.splitlines()
        if line.startswith((name + "{", name + " "))
    )


def test_sigterm_to_the_parent_stops_every_child(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    w = h.start_worker("-p", "2", "--poll", "0.2", "--grace", "5")
    _children_started(h, 2)
    w.send(signal.SIGTERM)
    assert w.wait_exit(15) == 0, w.tail()
    assert len(w.logged("worker stopped")) == 2, w.tail()


def test_a_child_killed_by_a_signal_makes_the_parent_fail(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    w = h.start_worker("-p", "2", "--poll", "0.2", "--grace", "5")
    victim, _ = _children_started(h, 2)
    os.kill(victim, signal.SIGKILL)
    wait_until(
        lambda: not _running(victim),
        10,
        lambda: f"child {victim} still running\n{w.tail()}",
    )
    w.send(signal.SIGTERM)
    # like a shell: 128 + the signal that killed the child
    assert w.wait_exit(15) == 128 + signal.SIGKILL, w.tail()


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting for its parent."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
