"""`tailrace reprocess` and `tailrace ingest` reading from S3 (moto's server), as a user runs
them: the endpoint and credentials come from the standard AWS variables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tailrace.pipeline.jobs import ReprocessingStore
from tailrace.pipeline.samples import write_samples
from tests.e2e.reprocess_support import expected_events, output_lines, run_cli, summary

from .conftest import SECRET_KEY


def _upload(s3: Any, bucket: str, tmp_path: Path, files: int) -> list[Path]:
    paths = [f.path for f in write_samples(tmp_path / "logs", files, 800, seed=8, bad_rate=0.01)]
    for path in paths:
        s3.upload_file(str(path), bucket, f"failover/{path.name}")
    return paths


def test_reprocess_from_a_bucket(s3: Any, bucket: str, tmp_path: Path) -> None:
    paths = _upload(s3, bucket, tmp_path, files=4)
    out = tmp_path / "out.ndjson"
    args = ["reprocess", f"s3://{bucket}/failover/", "--sink", f"file://{out}", "--json"]

    result = run_cli(args, f"sqlite:///{tmp_path}/t.db", tmp_path)

    assert result.returncode == 0, result.stderr
    report = summary(result.stdout)
    assert report["files"]["completed"] == 4
    assert report["balanced"] is True and report["deadlettered"] > 0
    assert output_lines(out) == expected_events(paths)
    assert SECRET_KEY not in result.stdout + result.stderr


def test_ingest_from_a_bucket_takes_each_object_version_once(
    s3: Any, bucket: str, tmp_path: Path
) -> None:
    paths = _upload(s3, bucket, tmp_path, files=3)
    out = tmp_path / "out.ndjson"
    url = f"sqlite:///{tmp_path}/t.db"
    args = ["ingest", f"s3://{bucket}/failover/", "--sink", f"file://{out}", "--json"]

    first = run_cli(args, url, tmp_path)
    again = run_cli(args, url, tmp_path)

    assert first.returncode == 0, first.stderr
    assert summary(first.stdout)["files"]["completed"] == 3
    assert summary(again.stdout)["status"] == "nothing to do"
    with ReprocessingStore(url) as store:
        records = store.processed_files()
    assert {r.bucket for r in records} == {bucket}
    assert all(r.version and not r.version.startswith("size:") for r in records)  # ETags
    assert output_lines(out) == expected_events(paths)
