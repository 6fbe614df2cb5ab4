"""`tailrace ingest` over a file that cannot be read to its end: the run fails (exit 1), the
record says FAILED with the reason, and later runs do not read the same bytes again."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import orjson

from tailrace.pipeline.jobs import ReprocessingStore
from tailrace.pipeline.jobs.model import IngestStatus

from .reprocess_support import output_lines, run_cli, summary


def test_an_unreadable_file_is_recorded_failed_with_its_reason_and_not_retried(
    database_url: str, tmp_path: Path
) -> None:
    logs, out = tmp_path / "logs", tmp_path / "out.ndjson"
    logs.mkdir()
    lines = [
        json.dumps({"messageId": f"m{n}", "origin": {"sourceId": "s"}}).encode()
        for n in range(4_000)
    ]
    (logs / "good.ndjson").write_bytes(b"\n".join(lines[:1_000]) + b"\n")
    whole = gzip.compress(b"\n".join(lines[1_000:]) + b"\n", mtime=0)
    (logs / "cut.ndjson.gz").write_bytes(whole[: len(whole) // 2])
    args = ["ingest", str(logs), "--sink", f"file://{out}", "--json"]

    first = run_cli(args, database_url, tmp_path)

    assert first.returncode == 1, first.stdout + first.stderr
    report = summary(first.stdout)
    assert report["status"] == "failed"
    assert report["files"] == {"total": 2, "completed": 1, "failed": 1}
    with ReprocessingStore(database_url) as store:
        records = {r.key: r for r in store.processed_files()}
    assert records[str(logs / "good.ndjson")].status is IngestStatus.COMPLETED
    cut = records[str(logs / "cut.ndjson.gz")]
    assert cut.status is IngestStatus.FAILED and cut.attempts == 1
    assert cut.error is not None and cut.error.startswith("unreadable: truncated gzip stream")
    delivered = output_lines(out)

    again = run_cli(args, database_url, tmp_path)

    # Nothing new, but a FAILED file is left: the run says so and exits 1 (a CronJob shows it).
    assert again.returncode == 1, again.stdout + again.stderr
    report = summary(again.stdout)
    assert report["status"] == "nothing to do"
    assert [f["key"] for f in report["failed_files"]] == [str(logs / "cut.ndjson.gz")]
    assert output_lines(out) == delivered  # nothing read twice

    listed = run_cli(["ingest-files", "list", str(logs), "--json"], database_url, tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert [f["key"] for f in orjson.loads(listed.stdout)["files"]] == [str(logs / "cut.ndjson.gz")]
    # an empty listing says so on stderr, and prints no row
    none = run_cli(
        ["ingest-files", "list", str(logs), "--status", "processing"], database_url, tmp_path
    )
    assert (none.returncode, none.stdout) == (0, ""), none.stderr
    assert none.stderr.strip() == f"no PROCESSING files under {logs}"

    # Replaced by a whole file under the same name and size class: reset retries the version
    # on record (the operator's call), which now fails again for the same reason.
    reset = run_cli(["ingest-files", "reset", str(logs / "cut.ndjson.gz")], database_url, tmp_path)
    assert reset.returncode == 0, reset.stderr
    assert "1 files reset" in reset.stdout
    with ReprocessingStore(database_url) as store:
        [cut] = [r for r in store.processed_files() if r.key.endswith("cut.ndjson.gz")]
    assert (cut.status, cut.attempts, cut.error) == (IngestStatus.PENDING, 0, None)
    third = run_cli(args, database_url, tmp_path)
    assert third.returncode == 1
    assert summary(third.stdout)["files"] == {"total": 1, "failed": 1}


def test_a_failed_file_replaced_or_deleted_no_longer_fails_the_runs(
    database_url: str, tmp_path: Path
) -> None:
    logs, out = tmp_path / "logs", tmp_path / "out.ndjson"
    logs.mkdir()
    lines = [json.dumps({"messageId": f"m{n}"}).encode() for n in range(3_000)]
    whole = gzip.compress(b"\n".join(lines) + b"\n", mtime=0)
    (logs / "cut.ndjson.gz").write_bytes(whole[: len(whole) // 2])
    (logs / "gone.ndjson.gz").write_bytes(whole[: len(whole) // 3])
    args = ["ingest", str(logs), "--sink", f"file://{out}", "--json"]
    assert run_cli(args, database_url, tmp_path).returncode == 1

    (logs / "cut.ndjson.gz").write_bytes(whole)  # uploaded again, whole: a new version
    (logs / "gone.ndjson.gz").unlink()
    fixed = run_cli(args, database_url, tmp_path)

    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert summary(fixed.stdout)["files"] == {"total": 1, "completed": 1}
    assert summary(fixed.stdout)["failed_files"] == []
    with ReprocessingStore(database_url) as store:
        versions = sorted((Path(r.key).name, r.status) for r in store.processed_files())
    assert versions == [
        ("cut.ndjson.gz", IngestStatus.COMPLETED),
        ("cut.ndjson.gz", IngestStatus.FAILED),  # the cut version, on record
        ("gone.ndjson.gz", IngestStatus.FAILED),
    ]
