"""Reading worker logs back: tails across block boundaries, time windows, lines that are
not JSON, and the merge by time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from tailrace.executors.logs import _BLOCK, merge_by_time, read_job_logs

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _write(path: Path, entries: list[tuple[float, str]], junk_after: int | None = None) -> None:
    with path.open("wb") as f:
        for n, (seconds_ago, msg) in enumerate(entries):
            ts = (NOW - timedelta(seconds=seconds_ago)).isoformat(timespec="milliseconds")
            f.write(orjson.dumps({"ts": ts, "level": "info", "msg": msg}) + b"\n")
            if n == junk_after:
                f.write(b"Traceback (most recent call last):\n  boom\n")


def test_the_tail_of_a_log_longer_than_many_blocks(tmp_path: Path) -> None:
    padding = "x" * 500
    count = 3 * _BLOCK // 500
    _write(tmp_path / "worker-0.log", [(count - i, f"{i} {padding}") for i in range(count)])
    (log,) = read_job_logs(tmp_path, "j", tail=7, now=NOW)
    numbers = [orjson.loads(line.message)["msg"].split()[0] for line in log.lines]
    assert numbers == [str(i) for i in range(count - 7, count)]
    assert log.pod_name == "local-j-0" and log.lines[0].level == "info"
    everything = read_job_logs(tmp_path, "j", now=NOW)[0].lines
    assert len(everything) == count


def test_since_keeps_the_last_seconds_only(tmp_path: Path) -> None:
    _write(tmp_path / "worker-1.log", [(s, f"at -{s}") for s in (300, 120, 30, 9, 2)])
    (log,) = read_job_logs(tmp_path, "j", since_s=10, now=NOW)
    assert [orjson.loads(line.message)["msg"] for line in log.lines] == ["at -9", "at -2"]
    assert log.worker_index == 1
    (both,) = read_job_logs(tmp_path, "j", since_s=200, tail=2, now=NOW)
    assert len(both.lines) == 2


def test_lines_that_are_not_json_keep_their_place(tmp_path: Path) -> None:
    _write(tmp_path / "worker-0.log", [(5, "a"), (4, "b")], junk_after=0)
    (log,) = read_job_logs(tmp_path, "j", now=NOW)
    assert [line.level for line in log.lines] == ["info", None, None, "info"]
    assert log.lines[1].message.startswith("Traceback")
    assert log.lines[1].timestamp == log.lines[0].timestamp  # the time of the line before


def test_merge_by_time_interleaves_workers_and_keeps_the_last(tmp_path: Path) -> None:
    _write(tmp_path / "worker-0.log", [(6, "w0 first"), (2, "w0 last")])
    _write(tmp_path / "worker-1.log", [(4, "w1 middle")])
    (tmp_path / "not-a-worker.txt").write_text("ignored")
    logs = read_job_logs(tmp_path, "j", now=NOW)
    assert [log.worker_index for log in logs] == [0, 1]
    merged = merge_by_time(logs)
    assert [line.worker_index for line in merged] == [0, 1, 0]
    assert [line.timestamp for line in merged] == sorted(line.timestamp for line in merged)
    assert merged[0].timestamp.endswith("Z")
    assert len(merge_by_time(logs, tail=2)) == 2


def test_a_job_without_logs_yet_has_none(tmp_path: Path) -> None:
    assert read_job_logs(tmp_path / "missing", "j") == []


def test_tail_with_since_reads_no_further_back_than_the_tail(tmp_path: Path) -> None:
    padding = "y" * 500
    count = 4 * _BLOCK // 500
    # every line is recent: `since` alone would read the whole file
    _write(tmp_path / "worker-0.log", [(1, f"{i} {padding}") for i in range(count)])
    reads: list[int] = []
    real_open = Path.open

    def counting_open(self: Path, *args: Any, **kwargs: Any) -> Any:
        f = real_open(self, *args, **kwargs)
        real_read = f.read

        def read(n: int = -1) -> bytes:
            reads.append(n)
            data: bytes = real_read(n)
            return data

        f.read = read
        return f

    import pytest

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Path, "open", counting_open)
        (log,) = read_job_logs(tmp_path, "j", tail=3, since_s=3600, now=NOW)
    assert len(log.lines) == 3
    assert sum(reads) <= 2 * _BLOCK  # a block or two from the end, not the whole file
