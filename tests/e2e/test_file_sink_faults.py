"""The file sink through the real CLI and workers: a full disk, then a resume once space
returned, must leave every event exactly once (the output is read back and compared with
the sample files read independently)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tailrace.pipeline.jobs import ReprocessingStore
from tailrace.pipeline.samples import write_samples

from ..small_fs import grow, small_filesystem
from .reprocess_support import expected_events, output_lines, run_cli, summary


@pytest.mark.slow
def test_disk_full_then_resume_writes_no_duplicate_and_loses_nothing(tmp_path: Path) -> None:
    written = write_samples(tmp_path / "logs", 3, 8_000, seed=11)
    paths = [f.path for f in written]
    want = expected_events(paths)
    database = f"sqlite:///{tmp_path}/tailrace.db"  # the job store is not on the full disk
    with small_filesystem(tmp_path / "small", "2m") as small:
        out = small / "out.ndjson"
        args = ["reprocess", str(tmp_path / "logs"), "--sink", f"file://{out}", "--json"]
        args += ["--workers", "2", "--checkpoint-every", "0.1"]
        full = run_cli(args, database, tmp_path, timeout=300)
        assert full.returncode != 0, full.stdout
        first = summary(full.stdout)
        assert first["status"] == "failed"
        with ReprocessingStore(database) as store:
            errors = [f.error or "" for f in store.files(first["job_id"])]
        assert any("No space left on device" in error for error in errors), errors
        # the file holds exactly what the checkpoints cover: nothing twice so far
        assert max(output_lines(out).values(), default=1) == 1

        grow(small, "64m")
        resumed = run_cli(["reprocessing", "resume", first["job_id"], "--json"], database, tmp_path)

        assert resumed.returncode == 0, resumed.stderr
        final = summary(resumed.stdout)
        assert final["status"] == "completed"
        got = output_lines(out)
        assert got == want  # every event once: none lost, none doubled
        assert final["sent"] == sum(want.values())
