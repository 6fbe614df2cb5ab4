"""A batch scheduler's own ``JOB_ID`` (SGE exports one to every process it starts) does not
turn ``tailrace worker`` into a reprocessing worker: only ``JOB_ID`` beside
``WORKER_INDEX`` (the reprocessing pods' contract), ``TAILRACE_JOB_ID`` or ``--job`` do."""

from __future__ import annotations

from tailrace import JobSpec, JobState

from .support import Harness


def test_a_stray_job_id_leaves_an_engine_worker_an_engine_worker(harness: Harness) -> None:
    h = harness
    ids = h.app.enqueue_many(JobSpec("record", {}) for _ in range(3))
    w = h.start_worker("--burst", "--poll", "0.2", env={"JOB_ID": "4242"})
    assert w.wait_exit(30) == 0, w.tail()
    assert h.all_in(ids, JobState.SUCCEEDED), h.states(ids)
    assert sorted(h.ids("runs")) == sorted(ids)
    warned = [e for e in w.logs() if str(e.get("level")).lower() == "warning"]
    assert any("JOB_ID is set without WORKER_INDEX" in str(e) for e in warned), w.tail()


def test_job_id_beside_worker_index_is_a_reprocessing_worker(harness: Harness) -> None:
    h = harness
    ids = h.app.enqueue_many(JobSpec("record", {}) for _ in range(2))
    env = {"JOB_ID": "4242", "WORKER_INDEX": "0", "TAILRACE_WORKER_CONFIG_DIR": str(h.tmp_path)}
    w = h.start_worker("--burst", env=env)
    # reprocessing job 4242 exists nowhere: the worker says so and runs no engine job
    assert w.wait_exit(30) != 0, w.tail()
    assert "4242" in w.text(), w.tail()
    assert h.all_in(ids, JobState.PENDING), h.states(ids)
