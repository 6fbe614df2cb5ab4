"""`tailrace ingest` over a file that cannot be read to its end: the run fails (exit 1), the
record says FAILED with the reason, and later runs do not read the same bytes again."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from tailrace.pipeline.jobs import JobStore
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
    with JobStore(database_url) as store:
        records = {r.key: r for r in store.processed_files()}
    assert records[str(logs / "good.ndjson")].status is IngestStatus.COMPLETED
    cut = records[str(logs / "cut.ndjson.gz")]
    assert cut.status is IngestStatus.FAILED and cut.attempts == 1
    assert cut.error is not None and cut.error.startswith("unreadable: truncated gzip stream")
    delivered = output_lines(out)

    again = run_cli(args, database_url, tmp_path)

    assert again.returncode == 0, again.stdout + again.stderr
    assert summary(again.stdout) == {"status": "nothing to do", "files": {"total": 0}}
    assert output_lines(out) == delivered  # nothing read twice
