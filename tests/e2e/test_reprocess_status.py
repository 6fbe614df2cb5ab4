"""A job's final status is a claim: `tailrace reprocess` over good files, a truncated gzip and a
file of bad lines, checked against an oracle computed here with the standard library (zlib,
json): the exit code, the summary's counters, every record in the output once, the dead
letters, and the statuses the store, the CLI and the API report."""

from __future__ import annotations

import gzip
import json
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tailrace.api import ApiConfig, create_app
from tailrace.pipeline.jobs import ReprocessingStatus, ReprocessingStore

from .reprocess_support import output_lines, run_cli, summary

TOKEN = "status-test-token-0123456789abcdef"


def _event(name: str, n: int) -> bytes:
    return json.dumps(
        {
            "messageId": f"{name}-{n}",
            "messageCreated": f"2026-11-20T10:{n // 60 % 60:02d}:{n % 60:02d}Z",
            "origin": {"sourceId": f"s{n % 3}"},
            "n": n,
        },
        separators=(",", ":"),
    ).encode()


def _lines(name: str, count: int) -> bytes:
    return b"".join(_event(name, n) + b"\n" for n in range(count))


@dataclass
class Expected:
    """What reading one file must give, worked out without tailrace's reader."""

    good: Counter[bytes] = field(default_factory=Counter)
    bad_lines: list[int] = field(default_factory=list)  # 1-based numbers of bad lines
    lines: int = 0
    unreadable_at: int | None = None  # the record where the bytes end

    @property
    def deadlettered(self) -> int:
        return len(self.bad_lines) + (self.unreadable_at is not None)


def _oracle(data: bytes, truncated: bool) -> Expected:
    if data[:2] == b"\x1f\x8b":
        # what decompresses before the damage, as zlib alone sees it
        data = zlib.decompressobj(wbits=31).decompress(data)
    pieces = data.split(b"\n")
    whole, tail = pieces[:-1], pieces[-1]
    expected = Expected()
    for number, line in enumerate(whole, start=1):
        expected.lines += 1
        try:
            value = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            value = None
        if isinstance(value, dict):
            expected.good[line] += 1
        else:
            expected.bad_lines.append(number)
    if truncated:
        # the cut line (or the place the bytes end) is one record, dead-lettered
        expected.lines += 1
        expected.unreadable_at = len(whole) + 1
    else:
        assert tail == b"", "the test's own files end with a newline"
    return expected


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, tuple[Path, Expected]]:
    logs = tmp_path / "logs"
    logs.mkdir()
    bad = _lines("bad", 1_000)
    bad_rows = bad.split(b"\n")
    for number in (3, 250, 251, 999):  # 1-based
        bad_rows[number - 1] = b'{"messageId": "broken", "origin": '
    bad_rows[500 - 1] = b'{"messageId":"caf\xe9"}'  # invalid UTF-8
    bad_rows[700 - 1] = b"[1, 2, 3]"  # JSON, not an object
    files = {
        "good.ndjson": (_lines("good", 3_000), False),
        "good2.ndjson.gz": (gzip.compress(_lines("good2", 2_000), mtime=0), False),
        "bad.ndjson": (b"\n".join(bad_rows), False),
        # an upload cut short: the first half of the compressed bytes
        "cut.ndjson.gz": (gzip.compress(_lines("cut", 5_000), mtime=0), True),
    }
    found = {}
    for name, (data, truncated) in files.items():
        if truncated:
            data = data[: len(data) // 2]
        (logs / name).write_bytes(data)
        found[name] = (logs / name, _oracle(data, truncated))
    cut = found["cut.ndjson.gz"][1]
    assert 0 < sum(cut.good.values()) < 5_000, "the cut file keeps part of its records"
    return found


def test_a_truncated_file_fails_its_job_and_everything_says_so(
    database_url: str,
    tmp_path: Path,
    inputs: dict[str, tuple[Path, Expected]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "out.ndjson"
    args = ["reprocess", str(tmp_path / "logs"), "--sink", f"file://{out}", "--json"]

    result = run_cli([*args, "--workers", "2"], database_url, tmp_path)

    # -- the exit code and the summary, against the oracle
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    report = summary(result.stdout)
    got = output_lines(out)
    # The reader may stop a little before the place zlib finds the damage: the piece it was
    # decompressing when the stream ended is lost (`_GZIP_PIECE`, 32 KiB, in
    # decoders/compression.py). What it read must be the cut file's first records, all of
    # them, each once, and the record after them the one that says the file ended.
    cut_path, cut = inputs["cut.ndjson.gz"]
    read = sum(1 for line in got if line.startswith(b'{"messageId":"cut-'))
    cut_lines = [line for line in cut.good]  # in file order (a Counter keeps insertion order)
    lost = cut_lines[read:]
    assert sum(map(len, lost)) + len(lost) <= 64 * 1024, f"{len(lost)} readable lines lost"
    cut.good = Counter(cut_lines[:read])
    cut.lines = read + 1
    cut.unreadable_at = read + 1
    inputs["cut.ndjson.gz"] = (cut_path, cut)
    everything = [e for _, e in inputs.values()]
    good: Counter[bytes] = sum((e.good for e in everything), Counter())
    assert report["status"] == "failed"
    assert report["lines"] == sum(e.lines for e in everything)
    assert report["sent"] == sum(good.values())
    assert report["deadlettered"] == sum(e.deadlettered for e in everything)
    assert (report["filtered"], report["skipped"]) == (0, 0)
    assert report["balanced"] is True
    assert report["files"] == {"total": 4, "completed": 3, "failed": 1}
    assert report["error"].startswith(f"1 of 4 files failed: {cut_path}: unreadable: ")
    [failed] = report["failed_files"]
    assert failed["file"] == str(cut_path) and failed["retryable"] is False
    assert failed["error"].startswith("unreadable: ")
    assert f"at line {cut.unreadable_at}," in failed["error"]
    assert (failed["lines"], failed["sent"], failed["deadlettered"]) == (
        cut.lines,
        sum(cut.good.values()),
        1,
    )

    # -- the output: every good record exactly once, the cut file's included
    assert got == good

    # -- the dead letters: each bad line once, with its file and line; the cut one is fatal
    letters = [
        json.loads(line) for line in (tmp_path / "out.deadletter.ndjson").read_bytes().splitlines()
    ]
    by_file: dict[str, list[dict[str, Any]]] = {}
    for letter in letters:
        by_file.setdefault(letter["file"], []).append(letter)
    bad_path, bad = inputs["bad.ndjson"]
    assert sorted(d["line"] for d in by_file.pop(str(bad_path))) == bad.bad_lines
    [fatal] = by_file.pop(str(cut_path))
    assert fatal["fatal"] is True and fatal["line"] == cut.unreadable_at
    assert by_file == {}

    # -- the store: the job failed with the reason; the cut file failed once, not retried
    with ReprocessingStore(database_url) as store:
        job = store.job(report["job_id"])
        assert job.status is ReprocessingStatus.FAILED
        assert job.error == report["error"]
        files = {f.url: f for f in store.files(job.id)}
        for name, (path, expected) in inputs.items():
            record = files[str(path)]
            assert record.counters.lines == expected.lines, name
            assert record.counters.balanced, name
            if name == "cut.ndjson.gz":
                assert record.status is ReprocessingStatus.FAILED
                assert record.attempts == 1, "a file that cannot be read is not retried"
                assert record.error == failed["error"]
            else:
                assert record.status is ReprocessingStatus.COMPLETED, (name, record.error)
                assert record.error is None

    # -- the CLI's show: the same, and exit 1
    shown = run_cli(["reprocessing", "show", job.id], database_url, tmp_path)
    assert shown.returncode == 1, shown.stderr
    assert json.loads(shown.stdout)["failed_files"] == report["failed_files"]

    # -- the API: the job failed with the reason; per file, the statuses and the reason
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TAILRACE_DATA_DIR", str(tmp_path / ".tailrace"))
    monkeypatch.setenv("TAILRACE_API_TOKENS", TOKEN)
    api = create_app(ApiConfig.from_environment(database_url))
    with TestClient(api, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        shown_job = client.get(f"/api/admin/reprocessing/jobs/{job.id}").json()
        assert (shown_job["status"], shown_job["error"]) == ("failed", report["error"])
        assert shown_job["error_count"] == report["deadlettered"]
        listed = client.get("/api/admin/reprocessing/jobs", params={"status": "failed"}).json()
        assert [j["id"] for j in listed["jobs"]] == [job.id]
        api_files = client.get(f"/api/admin/reprocessing/jobs/{job.id}/files").json()
        assert api_files["total"] == 4
        statuses = {f["url"]: (f["status"], f["error"]) for f in api_files["files"]}
        assert statuses == {
            str(p): ("failed", failed["error"]) if p == cut_path else ("completed", None)
            for p, _ in inputs.values()
        }
        only_failed = client.get(
            f"/api/admin/reprocessing/jobs/{job.id}/files", params={"status": "failed"}
        ).json()
        assert [f["url"] for f in only_failed["files"]] == [str(cut_path)]

    # -- a resume does not read the damaged file again: nothing new, still failed
    resumed = run_cli(["reprocessing", "resume", job.id, "--json"], database_url, tmp_path)
    assert resumed.returncode == 1, resumed.stderr
    again = summary(resumed.stdout)
    assert again["status"] == "failed"
    assert (again["lines"], again["sent"], again["deadlettered"]) == (
        report["lines"],
        report["sent"],
        report["deadlettered"],
    )
    assert output_lines(out) == good
