"""`tailrace ingest` end to end: incremental runs, and overlapping runs on one source."""

from __future__ import annotations

import signal
from pathlib import Path

from tailrace.pipeline.jobs import ReprocessingStore
from tailrace.pipeline.jobs.model import IngestStatus
from tailrace.pipeline.samples import write_samples

from .reprocess_support import expected_events, output_lines, run_cli, start_cli, stop_cli, summary
from .support import wait_until


def test_each_run_takes_only_what_is_new(database_url: str, tmp_path: Path) -> None:
    logs, out = tmp_path / "logs", tmp_path / "out.ndjson"
    first = [f.path for f in write_samples(logs, 3, 500, seed=1)]
    args = ["ingest", str(logs), "--sink", f"file://{out}", "--json"]

    run1 = run_cli(args, database_url, tmp_path)
    assert run1.returncode == 0, run1.stderr
    assert summary(run1.stdout)["files"]["completed"] == 3

    run2 = run_cli(args, database_url, tmp_path)
    assert run2.returncode == 0, run2.stderr
    assert summary(run2.stdout) == {"status": "nothing to do", "files": {"total": 0}}

    second = [f.path for f in write_samples(logs / "later", 2, 500, seed=2)]
    run3 = run_cli(args, database_url, tmp_path)
    assert run3.returncode == 0, run3.stderr
    assert summary(run3.stdout)["files"]["completed"] == 2
    assert output_lines(out) == expected_events(first + second)
    with ReprocessingStore(database_url) as store:
        records = store.processed_files()
    assert len(records) == 5
    assert {r.status for r in records} == {IngestStatus.COMPLETED}


def test_overlapping_runs_ingest_each_file_once(database_url: str, tmp_path: Path) -> None:
    logs, out = tmp_path / "logs", tmp_path / "out.ndjson"
    paths = [f.path for f in write_samples(logs, 12, 2_000, seed=3)]
    args = ["ingest", str(logs), "--sink", f"file://{out}", "--json", "--workers", "1"]

    runs = [start_cli(args, database_url, tmp_path) for _ in range(3)]
    results: list[tuple[int, str, str]] = []
    try:
        for run in runs:
            stdout, stderr = run.communicate(timeout=120)
            results.append((run.returncode, stdout, stderr))
    finally:
        for run in runs:
            stop_cli(run)
    assert all(code == 0 for code, _, _ in results), [err for _, _, err in results]
    ingested = sum(summary(out_).get("files", {}).get("completed", 0) for _, out_, _ in results)
    assert ingested == 12
    assert output_lines(out) == expected_events(paths)  # each event exactly once


def test_concurrent_runs_share_the_files_one_claim_at_a_time(pg_url: str, tmp_path: Path) -> None:
    """Run A holds one file (it is paused in it); run B, started then, takes every other
    file and leaves A's alone; A, woken, finishes its file and finds nothing else to take."""
    logs, out = tmp_path / "logs", tmp_path / "out.ndjson"
    paths = [f.path for f in write_samples(logs, 6, 3_000, seed=4)]
    args = ["ingest", str(logs), "--sink", f"file://{out}", "--json"]
    first = start_cli(args, pg_url, tmp_path)
    second = None
    try:
        held = wait_until(lambda: _processing(pg_url), 60, "run A claiming a file")
        first.send_signal(signal.SIGSTOP)
        assert len(held) == 1  # one file claimed, not all six
        second = start_cli(args, pg_url, tmp_path)
        b_out, b_err = second.communicate(timeout=120)
        first.send_signal(signal.SIGCONT)
        a_out, a_err = first.communicate(timeout=120)
    finally:
        first.send_signal(signal.SIGCONT)
        stop_cli(first)
        if second is not None:
            stop_cli(second)
    assert second.returncode == 0, (b_out, b_err)
    assert first.returncode == 0, (a_out, a_err)
    assert summary(b_out)["files"] == {"total": 5, "completed": 5}
    assert summary(a_out)["files"] == {"total": 1, "completed": 1}
    assert output_lines(out) == expected_events(paths)  # each event exactly once
    with ReprocessingStore(pg_url) as store:
        assert {r.status for r in store.processed_files()} == {IngestStatus.COMPLETED}


def test_workers_run_several_claim_loops(database_url: str, tmp_path: Path) -> None:
    logs, out = tmp_path / "logs", tmp_path / "out.ndjson"
    paths = [f.path for f in write_samples(logs, 8, 2_000, seed=6)]
    # a relative source, as typed in a shell: the record holds absolute paths
    args = ["ingest", "logs", "--sink", f"file://{out}", "--json", "--workers", "2"]

    result = run_cli(args, database_url, tmp_path)

    assert result.returncode == 0, result.stderr
    report = summary(result.stdout)
    assert report["files"]["completed"] == 8 and report["balanced"] is True
    assert 1 <= len(report["jobs"]) <= 2
    assert output_lines(out) == expected_events(paths)


def _processing(url: str) -> list[str]:
    try:
        with ReprocessingStore(url) as store:
            return [r.key for r in store.processed_files() if r.status is IngestStatus.PROCESSING]
    except Exception:  # the run has not created the tables yet
        return []
