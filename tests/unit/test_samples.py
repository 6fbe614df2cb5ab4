"""Sample failover logs: reproducible, realistic, uneven, and broken only when asked."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from tailrace.cli.samples import sample_logs
from tailrace.pipeline.samples import SampleFile, default_range, write_samples


def _content(sample: SampleFile) -> bytes:
    data = sample.path.read_bytes()
    return gzip.decompress(data) if sample.compression == "gzip" else data


def _lines(sample: SampleFile) -> list[bytes]:
    data = _content(sample)
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the newline that ends the last line
    return lines


def _parsed(sample: SampleFile) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in _lines(sample)]


def _ms(iso: str) -> datetime:
    assert iso.endswith("Z") and len(iso) == 24, iso
    return datetime.fromisoformat(iso)


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> list[SampleFile]:
    return write_samples(tmp_path_factory.mktemp("samples"), files=8, lines=400, seed=7)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    first = write_samples(tmp_path / "a", 4, 200, seed=3)
    again = write_samples(tmp_path / "b", 4, 200, seed=3)
    other = write_samples(tmp_path / "c", 4, 200, seed=4)
    assert [f.path.name for f in first] == [f.path.name for f in again]
    assert [f.path.read_bytes() for f in first] == [f.path.read_bytes() for f in again]
    assert any(f.compression == "gzip" for f in first)  # the gzip bytes are compared too
    assert {f.path.read_bytes() for f in first}.isdisjoint(f.path.read_bytes() for f in other)


def test_counts_names_and_compression(samples: list[SampleFile]) -> None:
    assert len(samples) == 8
    assert sum(f.lines for f in samples) == 8 * 400
    assert {f.compression for f in samples} == {"gzip", "none"}
    assert sum(f.compression == "gzip" for f in samples) == 4  # the default share is half
    for f in samples:
        assert len(_lines(f)) == f.lines
        assert f.size == f.path.stat().st_size
        assert f.bad_lines == 0
        suffix = ".ndjson.gz" if f.compression == "gzip" else ".ndjson"
        assert f.path.name.startswith("failover_") and f.path.name.endswith(suffix)
        # Compression is in the bytes, not only in the name.
        assert f.path.read_bytes()[:2] == (b"\x1f\x8b" if f.compression == "gzip" else b'{"')
    stamp = samples[0].path.name.removeprefix("failover_").split("_")[0]
    assert datetime.strptime(stamp, "%Y-%m-%dT%H-%M-%S").replace(tzinfo=UTC) == default_range(7)[0]


def test_every_line_is_a_jitsu_failover_event(samples: list[SampleFile]) -> None:
    events = [e for f in samples for e in _parsed(f)]
    id_forms = {"sourceId": 0, "source_id": 0}
    streams, types, message_ids = set(), set(), set()
    for event in events:
        for key in (
            "messageId",
            "messageCreated",
            "type",
            "anonymousId",
            "context",
            "properties",
            "timestamp",
            "receivedAt",
            "origin",
        ):
            assert key in event, (key, event)
        assert isinstance(event["context"], dict) and isinstance(event["origin"], dict)
        assert {"ip", "userAgent", "page"} <= event["context"].keys()
        assert event["context"]["page"]["url"].startswith("https://")
        origin = event["origin"]
        assert "slug" in origin
        forms = [k for k in id_forms if k in origin]
        assert len(forms) == 1, origin
        id_forms[forms[0]] += 1
        streams.add(origin[forms[0]])
        types.add(event["type"])
        if event["type"] == "track":
            assert isinstance(event["event"], str) and event["event"]
        message_ids.add(event["messageId"])
        assert len(str(event["messageId"])) == 36 and str(event["messageId"])[14] == "4"
    assert types == {"track", "page", "identify"}
    assert len(streams) == 5
    assert id_forms["sourceId"] > id_forms["source_id"] > 0
    assert len(message_ids) == len(events)
    assert any("userId" in e for e in events) and any("userId" not in e for e in events)


def test_times_fall_in_the_range_and_ascend_within_a_file(samples: list[SampleFile]) -> None:
    start, end = default_range(7)
    assert end - start == (end - start).__class__(days=3)
    assert default_range(7) == default_range(7) and default_range(7) != default_range(8)
    for f in samples:
        created = []
        for event in _parsed(f):
            for key in ("messageCreated", "timestamp", "receivedAt"):
                assert start <= _ms(str(event[key])) < end, (key, event[key])
            created.append(_ms(str(event["messageCreated"])))
        assert created == sorted(created)


def test_explicit_range(tmp_path: Path) -> None:
    start = datetime(2025, 1, 1, 12, tzinfo=UTC)
    end = datetime(2025, 1, 1, 13, tzinfo=UTC)
    (only,) = write_samples(tmp_path, 1, 300, seed=1, start=start, end=end, gzip_share=0.0)
    assert only.path.name == "failover_2025-01-01T12-00-00_0.ndjson"
    times = [_ms(str(e["messageCreated"])) for e in _parsed(only)]
    assert start <= min(times) and max(times) < end
    assert max(times) - min(times) > (end - start) / 2  # spread, not bunched at the start
    # Dense lines at the very start: client clocks lag, yet no time falls before the range.
    (dense,) = write_samples(
        tmp_path / "dense", 1, 500, seed=1, start=start, end=start.replace(second=2)
    )
    for event in _parsed(dense):
        assert start <= _ms(str(event["timestamp"])) < start.replace(second=2)
    with pytest.raises(ValueError, match="empty date range"):
        write_samples(tmp_path, 1, 1, start=end, end=start)


def test_sizes_are_uneven(tmp_path: Path) -> None:
    files = write_samples(tmp_path, 10, 300, seed=2, gzip_share=0.0)
    counts = [f.lines for f in files]
    assert sum(counts) == 3000 and min(counts) >= 1
    assert max(counts) >= 5 * min(counts)
    sizes = [f.size for f in files]
    assert max(sizes) >= 5 * min(sizes)
    # The biggest file is not simply the first or the last one by name.
    assert counts != sorted(counts) and counts != sorted(counts, reverse=True)


def test_gzip_share_and_tiny_outputs(tmp_path: Path) -> None:
    plain = write_samples(tmp_path / "p", 3, 2, seed=1, gzip_share=0.0)
    assert {f.compression for f in plain} == {"none"}
    packed = write_samples(tmp_path / "g", 3, 0, seed=1, gzip_share=1.0)
    assert {f.compression for f in packed} == {"gzip"}
    assert [f.lines for f in packed] == [0, 0, 0]
    assert all(gzip.decompress(f.path.read_bytes()) == b"" for f in packed)
    with pytest.raises(ValueError, match="fractions"):
        write_samples(tmp_path, 1, 1, gzip_share=1.5)


def _is_bad(line: bytes) -> bool:
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return True
    return False


def test_bad_lines_are_exactly_the_ones_listed(tmp_path: Path) -> None:
    files = write_samples(tmp_path, 4, 2000, seed=5, bad_rate=0.002)
    kinds: set[str] = set()
    for f in files:
        lines = _lines(f)
        assert len(lines) == f.lines
        found = [n for n, line in enumerate(lines, start=1) if _is_bad(line)]
        assert found == [b.line for b in f.bad]
        assert f.bad_lines == len(found) > 0
        assert f.events == f.lines - f.bad_lines
        kinds.update(b.kind for b in f.bad)
        truncated = [b for b in f.bad if b.kind == "truncated"]
        ends_with_newline = _content(f).endswith(b"\n")
        assert ends_with_newline == (not truncated)
        if truncated:
            assert truncated == [f.bad[-1]] and f.bad[-1].line == f.lines
        # About the asked fraction, and at least one in a file without a truncated tail.
        assert len(f.bad) - len(truncated) == max(round(f.lines * 0.002), 0 if truncated else 1)
        for b in f.bad:
            if b.kind == "invalid_utf8":
                with pytest.raises(UnicodeDecodeError):
                    lines[b.line - 1].decode()
    assert kinds == {"invalid_json", "invalid_utf8", "truncated"}


def test_cli_writes_files_and_prints_totals(tmp_path: Path) -> None:
    out = tmp_path / "logs"
    result = CliRunner().invoke(
        sample_logs, [str(out), "--files", "3", "--lines", "50", "--seed", "9", "--bad-lines"]
    )
    assert result.exit_code == 0, result.output
    written = sorted(out.iterdir())
    assert len(written) == 3
    total_bytes = sum(p.stat().st_size for p in written)
    assert "3 files" in result.output
    assert "150 lines" in result.output
    assert f"{total_bytes:,} bytes" in result.output
    assert str(out) in result.output
    assert "bad lines" in result.output
    # The CLI and the library agree byte for byte for the same arguments.
    again = write_samples(tmp_path / "lib", 3, 50, seed=9, bad_rate=0.001)
    assert [p.read_bytes() for p in written] == [f.path.read_bytes() for f in again]


def test_cli_rejects_bad_options(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(sample_logs, [str(tmp_path), "--gzip-share", "2"])
    assert result.exit_code == 2 and "gzip-share" in result.output
    result = runner.invoke(
        sample_logs, [str(tmp_path), "--from", "2025-01-02", "--to", "2025-01-01"]
    )
    assert result.exit_code == 2 and "--to" in result.output
    assert list(tmp_path.iterdir()) == []
