"""SIGTERM: stop claiming, let in-flight jobs finish within the grace period, release the rest."""

from __future__ import annotations

import signal
import time

import pytest

from tailrace import JobState

from .support import Harness, wait_until


def test_sigterm_lets_the_running_job_finish_and_claims_nothing_new(harness: Harness) -> None:
    h = harness
    w = h.start_worker("--grace", "10", "--poll", "0.2")
    h.wait_started(w)
    slow_id = h.app.enqueue("slow", {"seconds": 2})
    wait_until(lambda: slow_id in h.ids("started"), 15, lambda: f"slow never started\n{w.tail()}")

    signalled = time.monotonic()
    w.send(signal.SIGTERM)
    # once the worker has seen the signal, a new job must not be claimed
    wait_until(lambda: w.logged("worker stopping"), 5, lambda: f"no 'worker stopping'\n{w.tail()}")
    late_id = h.app.enqueue("record")

    assert w.wait_exit(15) == 0, w.tail()
    took = time.monotonic() - signalled
    # it waited for the job (2 s from its start), not for the whole grace period
    assert took < 8, f"exit took {took:.1f} s: it waited out the grace period\n{w.tail()}"

    slow = h.job(slow_id)
    assert slow.state is JobState.SUCCEEDED, (slow, w.tail())
    assert slow.attempts == 1
    assert h.ids("finished") == [slow_id]
    late = h.job(late_id)
    assert late.state is JobState.PENDING, late
    assert late.attempts == 0 and late.started_at is None
    assert h.ids("runs") == []
    assert w.logged("worker stopped")[-1]["processed"] == 1


@pytest.mark.parametrize(
    "task",
    ["slow", "slow_sync"],
)
def test_sigterm_past_the_grace_period_releases_the_job(harness: Harness, task: str) -> None:
    h = harness
    w = h.start_worker("--grace", "0.5", "--poll", "0.2")
    h.wait_started(w)
    job_id = h.app.enqueue(task, {"seconds": 30})
    wait_until(lambda: job_id in h.ids("started"), 15, lambda: f"never started\n{w.tail()}")
    assert h.job(job_id).attempts == 1

    signalled = time.monotonic()
    w.send(signal.SIGTERM)
    assert w.wait_exit(5) == 0, w.tail()
    assert time.monotonic() - signalled < 5

    job = h.job(job_id)
    assert job.state is JobState.PENDING, (job, w.tail())
    assert job.attempts == 0  # a released attempt does not count
    assert job.started_at is None
    assert job.errors == []  # nor is it an error
    assert h.ids("finished") == []
    released = w.logged("released unfinished jobs")
    assert released and released[0]["job_ids"] == [job_id], w.tail()
