"""JobBatch: runs of one template, and to everything else a plain sequence of NewJob."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tailrace import App
from tailrace.engine.jobs import JobBatch


def test_a_batch_groups_jobs_of_one_template_and_reads_back_as_new_jobs() -> None:
    app = App()
    plain = app.new_job("t")
    other = app.new_job("u", queue="q")
    deduped = app.new_job("d", dedup_key="k")
    batch = JobBatch()
    for template, args in [
        (plain, b"1"),
        (plain, b"2"),
        (deduped, b"3"),
        (deduped, b"4"),
        (other, b'"5"'),
        (plain, b"6"),
    ]:
        batch.add(template, args)
    # a dedup job is a run of its own; a template seen again after another starts a new run
    assert [(t.task, len(a)) for t, a in batch.runs] == [
        ("t", 2),
        ("d", 1),
        ("d", 1),
        ("u", 1),
        ("t", 1),
    ]
    jobs = list(batch)
    assert len(batch) == 6
    assert [j.args_json for j in jobs] == ["1", "2", "3", "4", '"5"', "6"]
    assert jobs[4] == replace(other, args_json='"5"')
    assert [batch[i] for i in range(6)] == jobs
    assert batch[-1] == jobs[-1]
    assert batch[1:3] == jobs[1:3]
    with pytest.raises(IndexError):
        batch[6]


def test_of_keeps_a_batch_and_wraps_plain_jobs() -> None:
    app = App()
    jobs = [app.new_job("t", {"i": i}) for i in range(3)]
    batch = JobBatch.of(jobs)
    assert list(batch) == jobs
    assert JobBatch.of(batch) is batch
