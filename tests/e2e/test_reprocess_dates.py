"""Date bounds from the command line: Go's zero time (what Jitsu's Go clients send for a date
not set) means no bound, and an inverted range is refused before anything is stored."""

from __future__ import annotations

from pathlib import Path

import pytest

from tailrace.pipeline.jobs import ReprocessingStore
from tailrace.pipeline.samples import write_samples

from .reprocess_support import expected_events, output_lines, run_cli, summary


@pytest.mark.parametrize(
    "zero", ["0001-01-01T00:00:00Z", "0001-01-01T00:00:00+00:00", "0001-01-01 00:00:00"]
)
def test_zero_dates_keep_every_event(tmp_path: Path, zero: str) -> None:
    paths = [f.path for f in write_samples(tmp_path / "logs", 2, 2_000, seed=3)]
    out = tmp_path / "out.ndjson"
    url = f"sqlite:///{tmp_path}/t.db"
    args = ["reprocess", str(tmp_path / "logs"), "--sink", f"file://{out}", "--json"]

    result = run_cli([*args, "--from", zero, "--to", zero], url, tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    report = summary(result.stdout)
    want = expected_events(paths)
    assert report["status"] == "completed"
    assert (report["sent"], report["filtered"]) == (sum(want.values()), 0)
    assert output_lines(out) == want
    with ReprocessingStore(url) as store:
        config = store.job(report["job_id"]).config
        assert (config.date_from, config.date_to) == (None, None)


def test_an_inverted_date_range_is_refused_at_plan_time(tmp_path: Path) -> None:
    write_samples(tmp_path / "logs", 1, 100, seed=3)
    url = f"sqlite:///{tmp_path}/t.db"
    args = ["reprocess", str(tmp_path / "logs"), "--sink", "null:"]
    args += ["--from", "2026-02-01T00:00:00Z", "--to", "2026-01-01T00:00:00Z"]

    result = run_cli(args, url, tmp_path)

    assert result.returncode == 2, result.stdout + result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: the date range is inverted"), line
    assert "every event would be filtered out" in line
    listed = run_cli(["reprocessing", "list"], url, tmp_path)
    assert listed.returncode == 0 and "null:" not in listed.stdout, listed.stdout
