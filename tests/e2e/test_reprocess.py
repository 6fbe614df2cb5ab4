"""`tailrace reprocess` end to end: real worker processes, on both stores, into a file sink;
what arrives is compared line by line with the sample files read back independently."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from tailrace.engine.app import App
from tailrace.pipeline.jobs import ReprocessingStatus, ReprocessingStore
from tailrace.pipeline.jobs.service import ReprocessingService
from tailrace.pipeline.samples import default_range, write_samples

from .reprocess_support import (
    expected_events,
    output_lines,
    run_cli,
    run_killing_a_worker,
    start_cli,
    stop_cli,
    stream_of,
    summary,
    wait_for_checkpoint,
)
from .support import wait_until


def _samples(tmp_path: Path, files: int, lines: int, bad: float = 0.0) -> list[Path]:
    written = write_samples(tmp_path / "logs", files, lines, seed=7, bad_rate=bad)
    return [f.path for f in written]


def test_reprocess_filters_and_forwards_original_bytes(database_url: str, tmp_path: Path) -> None:
    paths = _samples(tmp_path, files=5, lines=2_000, bad=0.01)
    start, end = default_range(7)
    date_from, date_to = start + timedelta(hours=12), end - timedelta(hours=12)
    every = expected_events(paths)
    stream_ids = set(sorted({stream_of(json.loads(line)) or "" for line in every})[:2])
    out = tmp_path / "out.ndjson"
    args = ["reprocess", str(tmp_path / "logs"), "--sink", f"file://{out}", "--json"]
    args += [arg for s in sorted(stream_ids) for arg in ("--stream-id", s)]
    args += ["--from", date_from.isoformat(), "--to", date_to.isoformat(), "--workers", "2"]

    result = run_cli(args, database_url, tmp_path)

    assert result.returncode == 0, result.stderr
    report = summary(result.stdout)
    want = expected_events(paths, stream_ids=stream_ids, date_from=date_from, date_to=date_to)
    assert output_lines(out) == want
    assert report["status"] == "completed"
    assert report["sent"] == sum(want.values())
    assert report["balanced"] is True
    deadletters = (tmp_path / "out.deadletter.ndjson").read_bytes().splitlines()
    assert report["deadlettered"] == len(deadletters) > 0
    assert report["lines"] == report["sent"] + report["filtered"] + report["deadlettered"]
    assert report["files"]["completed"] == 5


def test_bad_source_and_sink_say_what_is_wrong(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/t.db"
    missing = run_cli(["reprocess", str(tmp_path / "nope"), "--sink", "null:"], url, tmp_path)
    assert missing.returncode == 2
    assert "nope" in missing.stderr and "Traceback" not in missing.stderr
    (tmp_path / "a.ndjson").write_text("{}\n")
    bad_sink = run_cli(
        ["reprocess", str(tmp_path / "a.ndjson"), "--sink", "ftp://x"], url, tmp_path
    )
    assert bad_sink.returncode == 2
    assert "unsupported sink" in bad_sink.stderr


def test_workers_that_cannot_start_fail_the_job_resumably(tmp_path: Path) -> None:
    """As through the API: the job is failed with the reason, not left pending, and a
    resume runs it once the workers can start."""
    paths = _samples(tmp_path, files=2, lines=500)
    url = f"sqlite:///{tmp_path}/t.db"
    out = tmp_path / "out.ndjson"
    blocked = tmp_path / "data"
    blocked.write_text("")  # a file where the workers' log directory must go
    args = ["reprocess", str(tmp_path / "logs"), "--sink", f"file://{out}", "--json"]

    started = run_cli(args, url, tmp_path, TAILRACE_DATA_DIR=str(blocked))

    assert started.returncode == 2, started.stdout + started.stderr
    assert "Traceback" not in started.stderr, started.stderr
    line = started.stderr.strip().splitlines()[-1]
    assert "its workers could not be started: NotADirectoryError" in line, line
    with ReprocessingStore(url) as store:
        (job,) = store.jobs()
        assert job.status is ReprocessingStatus.FAILED
        assert job.error is not None and "could not be started" in job.error

    blocked.unlink()
    resumed = run_cli(["reprocessing", "resume", job.id, "--json"], url, tmp_path)

    assert resumed.returncode == 0, resumed.stderr
    assert summary(resumed.stdout)["status"] == "completed"
    assert output_lines(out) == expected_events(paths)


@pytest.mark.slow
def test_sigkill_mid_file_resumes_from_checkpoint(sqlite_url: str, tmp_path: Path) -> None:
    paths = _samples(tmp_path, files=2, lines=150_000)
    out = tmp_path / "out.ndjson"
    # checkpoints several times per file, so that one surely lands while a file is read
    args = ["reprocess", str(tmp_path / "logs"), "--sink", f"file://{out}", "--json"]
    args += ["--checkpoint-every", "0.1"]
    result = run_killing_a_worker([*args, "--workers", "2"], sqlite_url, tmp_path, timeout=180)
    assert result.returncode == 0, result.stderr
    report = summary(result.stdout)
    want = expected_events(paths)
    got = output_lines(out)
    assert set(got) == set(want)  # nothing lost
    assert report["sent"] == sum(want.values())  # counters count each event once
    assert report["balanced"] is True
    duplicated = sum(got.values()) - sum(want.values())
    # duplicates are bounded by what one checkpoint interval could write
    assert 0 <= duplicated < 150_000


@pytest.mark.slow
def test_sigkill_mid_file_dead_letters_each_bad_line_once(sqlite_url: str, tmp_path: Path) -> None:
    paths = _samples(tmp_path, files=2, lines=150_000, bad=0.002)
    out = tmp_path / "out.ndjson"
    args = ["reprocess", str(tmp_path / "logs"), "--sink", f"file://{out}", "--json"]
    args += ["--checkpoint-every", "0.1"]
    result = run_killing_a_worker([*args, "--workers", "2"], sqlite_url, tmp_path, timeout=180)
    assert result.returncode == 0, result.stderr
    report = summary(result.stdout)
    assert set(output_lines(out)) == set(expected_events(paths))
    records = [
        json.loads(line) for line in (tmp_path / "out.deadletter.ndjson").read_bytes().splitlines()
    ]
    places = Counter((r["file"], r["line"]) for r in records)
    assert [p for p, n in places.items() if n > 1] == []  # the resumed file's too
    assert report["deadlettered"] == len(records) > 0


def test_cancel_then_resume(sqlite_url: str, tmp_path: Path) -> None:
    paths = _samples(tmp_path, files=3, lines=60_000)
    out = tmp_path / "out.ndjson"
    args = ["reprocess", str(tmp_path / "logs"), "--sink", f"file://{out}", "--json"]
    cli = start_cli([*args, "--checkpoint-every", "0.1"], sqlite_url, tmp_path)
    try:
        with ReprocessingStore(sqlite_url) as store:
            # cancelled while a file is read: the job cannot have finished yet
            job_id = wait_for_checkpoint(store, running=True)
            # in this process: a CLI's start-up could outlast the rest of the job
            with App(sqlite_url) as app:
                cancelled = ReprocessingService(app, store).cancel(job_id)
                assert cancelled.status is ReprocessingStatus.CANCELLED
            again = run_cli(["reprocessing", "cancel", job_id], sqlite_url, tmp_path)
            assert again.returncode == 0 and "cancelled" in again.stdout, again.stderr
        stdout, stderr = cli.communicate(timeout=60)
    finally:
        stop_cli(cli)
    assert cli.returncode == 1, stderr
    first = summary(stdout)
    assert first["status"] == "cancelled"
    assert first["balanced"] is True
    assert first["lines"] > 0

    resumed = run_cli(["reprocessing", "resume", job_id, "--json"], sqlite_url, tmp_path)

    assert resumed.returncode == 0, resumed.stderr
    final = summary(resumed.stdout)
    want = expected_events(paths)
    assert final["status"] == "completed"
    assert final["sent"] == sum(want.values())
    assert set(output_lines(out)) == set(want)


def test_a_resume_refuses_an_output_that_lost_what_the_job_wrote(
    sqlite_url: str, tmp_path: Path
) -> None:
    """The records a cancelled job made durable are gone from its file (moved away, or
    emptied in place): resuming cannot write them again (their lines are checkpointed), so
    it fails saying so instead of completing with them missing; the file put back, the
    resume completes with every event."""
    paths = _samples(tmp_path, files=3, lines=60_000)
    out = tmp_path / "out.ndjson"
    args = ["reprocess", str(tmp_path / "logs"), "--sink", f"file://{out}", "--json"]
    cli = start_cli([*args, "--checkpoint-every", "0.1"], sqlite_url, tmp_path)
    try:
        with ReprocessingStore(sqlite_url) as store, App(sqlite_url) as app:
            job_id = wait_for_checkpoint(store, running=True)
            wait_until(lambda: store.job(job_id).counters.sent > 0, 60, "records checkpointed")
            ReprocessingService(app, store).cancel(job_id)
        cli.communicate(timeout=60)
    finally:
        stop_cli(cli)
    kept = tmp_path / "kept.ndjson"
    out.rename(kept)
    moved = run_cli(["reprocessing", "resume", job_id, "--json"], sqlite_url, tmp_path)
    assert moved.returncode != 0 and summary(moved.stdout)["status"] == "failed"
    assert "is empty now (emptied, moved" in moved.stdout + moved.stderr
    assert not out.exists()  # the refused resume leaves no file where there was none

    kept.rename(out)
    whole = out.read_bytes()
    out.write_bytes(b"")  # emptied in place: the same file, its record says otherwise
    emptied = run_cli(["reprocessing", "resume", job_id, "--json"], sqlite_url, tmp_path)
    assert emptied.returncode != 0 and summary(emptied.stdout)["status"] == "failed"
    assert "is empty now (emptied, moved" in emptied.stdout + emptied.stderr

    out.write_bytes(whole)
    resumed = run_cli(["reprocessing", "resume", job_id, "--json"], sqlite_url, tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    want = expected_events(paths)
    assert summary(resumed.stdout)["status"] == "completed"
    assert output_lines(out) == want  # every event, once


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/tailrace.db"
