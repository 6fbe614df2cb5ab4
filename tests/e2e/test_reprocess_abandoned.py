"""A job whose CLI died, or whose store could not be written, is not left running for good:
`tailrace reprocessing resume` takes it over once its workers are gone (no worker reports, no
live lease), without a cancel first. Faults for real: SIGKILL of the CLI and its workers, and
a store on a disk that fills up (a tmpfs of its own)."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tailrace.pipeline.jobs import ReprocessingStatus, ReprocessingStore
from tailrace.pipeline.samples import write_samples

from .reprocess_support import (
    expected_events,
    output_lines,
    run_cli,
    start_cli,
    stop_cli,
    summary,
    wait_for_checkpoint,
    worker_pids,
)
from .support import wait_until

# a resume waits until the workers are seen gone (15 s without a report or a live lease)
pytestmark = pytest.mark.slow


def _samples(tmp_path: Path, lines: int) -> list[Path]:
    return [f.path for f in write_samples(tmp_path / "logs", 2, lines, seed=11)]


def _resume_completes(url: str, tmp_path: Path, job_id: str, paths: list[Path]) -> None:
    """Once the workers are seen gone, a resume finishes the job: every event delivered,
    the counters counting each once."""
    with ReprocessingStore(url) as store:
        wait_until(lambda: store.job_abandoned(job_id), 60, "the job's workers to be seen gone")
    resumed = run_cli(["reprocessing", "resume", job_id, "--json"], url, tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    final = summary(resumed.stdout)
    want = expected_events(paths)
    assert final["status"] == "completed"
    assert final["sent"] == sum(want.values()) and final["balanced"] is True
    got = output_lines(tmp_path / "out.ndjson")
    assert set(got) == set(want)  # nothing lost; duplicates only from the last checkpoints


def test_a_job_whose_cli_was_killed_with_its_workers_resumes_without_a_cancel(
    database_url: str, tmp_path: Path
) -> None:
    paths = _samples(tmp_path, 100_000)
    out = tmp_path / "out.ndjson"
    args = ["reprocess", str(tmp_path / "logs"), "--sink", f"file://{out}", "--json"]
    cli = start_cli([*args, "--workers", "2", "--checkpoint-every", "0.1"], database_url, tmp_path)
    try:
        with ReprocessingStore(database_url) as store:
            job_id = wait_for_checkpoint(store, running=True)
            # while its workers live, the job is theirs: a resume is refused
            early = run_cli(["reprocessing", "resume", job_id], database_url, tmp_path)
            assert early.returncode == 2, early.stdout + early.stderr
            assert f"job {job_id} is running" in early.stderr
            assert store.job_abandoned(job_id) is None
            pids = worker_pids(tmp_path)
            assert pids, "no worker process found"
            cli.send_signal(signal.SIGKILL)
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            cli.wait(timeout=30)
            wait_until(lambda: not worker_pids(tmp_path), 30, "the workers to be gone")
            assert store.job_status(job_id) is ReprocessingStatus.RUNNING  # nobody said otherwise
    finally:
        stop_cli(cli)

    _resume_completes(database_url, tmp_path, job_id, paths)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs of the test's own, for a disk that fills up for real."""
    where = tmp_path / "disk"
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(disk: Path) -> Path:
    filler = disk / "filler"
    # unbuffered: a buffer left holding the write that failed would fail again at close
    with filler.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


def test_a_store_on_a_full_disk_fails_the_cli_in_one_line_and_the_job_resumes(
    small_disk: Path, tmp_path: Path
) -> None:
    paths = _samples(tmp_path, 100_000)
    url = f"sqlite:///{small_disk}/tailrace.db"
    out = tmp_path / "out.ndjson"
    args = ["reprocess", str(tmp_path / "logs"), "--sink", f"file://{out}", "--json"]
    cli = start_cli([*args, "--workers", "2", "--checkpoint-every", "0.1"], url, tmp_path)
    try:
        with ReprocessingStore(url) as store:
            job_id = wait_for_checkpoint(store, running=True)
        filler = _fill(small_disk)
        stdout, stderr = cli.communicate(timeout=240)
    finally:
        stop_cli(cli)

    assert cli.returncode == 1, stdout + stderr
    assert "Traceback" not in stderr, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: the job store sqlite:///{small_disk}/tailrace.db failed: ")
    assert "database or disk is full" in last
    assert f"tailrace reprocessing resume {job_id}" in last
    with ReprocessingStore(url) as store:  # reading still works on a full disk
        assert store.job_status(job_id) is ReprocessingStatus.RUNNING

    filler.unlink()  # space again
    _resume_completes(url, tmp_path, job_id, paths)
