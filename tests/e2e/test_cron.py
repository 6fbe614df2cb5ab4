"""A cron schedule that every worker fires: each tick enqueues exactly one job."""

from __future__ import annotations

import signal
from collections import Counter
from datetime import datetime, timedelta
from itertools import pairwise

import pytest

from tailrace import JobFilter, JobState

from .support import Harness, duplicates, wait_until
from .tasks_app import CRON_ENV

TICKS = 4


@pytest.mark.slow
def test_three_workers_fire_each_cron_tick_once(harness: Harness) -> None:
    h = harness
    env = {CRON_ENV: "* * * * * *"}  # every second
    workers = [h.start_worker("--poll", "0.2", env=env) for _ in range(3)]
    h.wait_started(*workers)

    def ticked() -> list[datetime]:
        jobs = h.app.jobs(JobFilter(task="record", state=JobState.SUCCEEDED), limit=1000)
        return sorted({j.run_at for j in jobs})

    wait_until(
        lambda: len(ticked()) >= TICKS,
        TICKS + 15,
        lambda: f"ticks run so far: {ticked()}\n{h.tails()}",
        interval=0.2,
    )
    for w in workers:
        w.send(signal.SIGTERM)
    for w in workers:
        assert w.wait_exit(15) == 0, w.tail()

    jobs = h.app.jobs(JobFilter(task="record"), limit=1000)
    per_tick = Counter(j.run_at for j in jobs)
    assert {t: n for t, n in per_tick.items() if n > 1} == {}, "a tick enqueued several jobs"
    ticks = sorted(per_tick)
    assert len(ticks) >= TICKS
    assert all(t.microsecond == 0 for t in ticks), ticks
    # every second between the first tick and the last fired: none was skipped
    gaps = [(a, b) for a, b in pairwise(ticks) if b - a != timedelta(seconds=1)]
    assert gaps == [], f"missed ticks between {gaps}"

    # each firing was won by exactly one worker
    fired = [e for w in workers for e in w.logged("schedule fired")]
    fired_ticks = [e["tick"] for e in fired]
    assert not duplicates(fired_ticks), f"fired by several workers: {duplicates(fired_ticks)}"
    assert sorted(e["job_id"] for e in fired) == sorted(j.id for j in jobs)

    succeeded = {j.id for j in jobs if j.state is JobState.SUCCEEDED}
    runs = h.ids("runs")
    assert not duplicates(runs), f"ran twice: {duplicates(runs)}"
    assert set(runs) == succeeded
    assert len(succeeded) >= TICKS
