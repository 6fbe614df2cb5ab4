"""WORKER_PRIORITY_FILTER: a worker that runs only some priorities leaves the rest alone."""

from __future__ import annotations

from tailrace import JobSpec, JobState, Priority

from .support import Harness, duplicates

PER_PRIORITY = 5


def test_worker_priority_filter_runs_only_those_priorities(harness: Harness) -> None:
    h = harness
    # the lowest priorities first, so claim order alone would not keep them out
    ids = {
        p: h.app.enqueue_many(
            JobSpec("record", {"p": p.name}, priority=p) for _ in range(PER_PRIORITY)
        )
        for p in reversed(Priority)
    }
    w = h.start_worker("--burst", "--poll", "0.2", env={"WORKER_PRIORITY_FILTER": "CRITICAL,HIGH"})
    # burst: it exits once nothing it may run is left
    assert w.wait_exit(20) == 0, w.tail()
    assert w.logged("worker started")[0]["priorities"] == ["CRITICAL", "HIGH"]

    wanted = ids[Priority.CRITICAL] + ids[Priority.HIGH]
    others = ids[Priority.DEFAULT] + ids[Priority.LOW] + ids[Priority.BULK]
    assert h.all_in(wanted, JobState.SUCCEEDED), h.states(wanted)
    left = h.jobs(others)
    assert {j.state for j in left} == {JobState.PENDING}, [(j.id, j.state) for j in left]
    assert {j.attempts for j in left} == {0}
    runs = h.ids("runs")
    assert not duplicates(runs)
    assert sorted(runs) == sorted(wanted)
