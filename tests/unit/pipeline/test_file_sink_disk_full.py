"""The file sink on a real full disk (a small tmpfs): a failed write is taken back, so the
file holds exactly what was flushed, and writing resumes once space returns."""

from __future__ import annotations

from pathlib import Path

import pytest

from tailrace.pipeline.sinks import FileSink, SinkError

from ...small_fs import grow, small_filesystem


def _lines(start: int, count: int) -> list[bytes]:
    return [b'{"n":%d,"pad":"%s"}' % (n, b"x" * 200) for n in range(start, start + count)]


@pytest.mark.parametrize("buffer_bytes", [1 << 30, 64 * 1024])  # one write per flush, or early
def test_a_full_disk_leaves_exactly_what_was_flushed(tmp_path: Path, buffer_bytes: int) -> None:
    with small_filesystem(tmp_path / "small", "1m") as small:
        path = small / "out.ndjson"
        sink = FileSink(path, buffer_bytes=buffer_bytes)
        flushed: list[bytes] = []
        n = 0
        with pytest.raises(SinkError, match="No space left on device") as raised:
            while True:
                batch = _lines(n, 500)
                sink.write(batch)
                sink.flush()
                flushed += batch
                n += 500
        assert str(path) in str(raised.value)
        assert path.read_bytes() == b"".join(line + b"\n" for line in flushed)
        assert sink.counters.events == len(flushed)
        sink.close()

        grow(small, "16m")
        with FileSink(path, buffer_bytes=buffer_bytes) as resumed:
            resumed.write(_lines(n, 500))
        got = path.read_bytes().splitlines()
        assert got == flushed + _lines(n, 500)
