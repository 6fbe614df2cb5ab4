from __future__ import annotations

import gzip
import io
import tracemalloc
import zlib

import orjson
import pytest
import zstandard

from tailrace.pipeline.decoders.framing import BadLine, Checkpoint, Line, LineReader


def lines_of(data: bytes, **options: object) -> list[Line | BadLine]:
    return list(LineReader(io.BytesIO(data), file="f.ndjson", **options))  # type: ignore[arg-type]


def numbered(data: bytes, **options: object) -> list[tuple[int, int, bytes]]:
    out = []
    for item in lines_of(data, **options):
        assert isinstance(item, Line), item
        out.append((item.number, item.offset, item.data))
    return out


def test_lines_with_numbers_and_offsets() -> None:
    assert numbered(b"a\nbb\nccc\n") == [(1, 0, b"a"), (2, 2, b"bb"), (3, 5, b"ccc")]


def test_end_is_next_line_offset() -> None:
    items = lines_of(b"a\r\nbb\n")
    assert [(i.offset, i.end) for i in items if isinstance(i, Line)] == [(0, 3), (3, 6)]


def test_empty_lines_skipped_but_counted() -> None:
    assert numbered(b"\na\n\n\nb\n\n") == [(2, 1, b"a"), (5, 5, b"b")]


def test_crlf_stripped() -> None:
    assert numbered(b"a\r\nb\r\n\r\nc") == [(1, 0, b"a"), (2, 3, b"b"), (4, 8, b"c")]


@pytest.mark.parametrize("chunk_bytes", [1, 2, 3, 4])
def test_crlf_split_across_chunks(chunk_bytes: int) -> None:
    data = b"ab\r\ncd\r\n\r\nef\r"
    assert numbered(data, chunk_bytes=chunk_bytes) == [(1, 0, b"ab"), (2, 4, b"cd"), (4, 10, b"ef")]


def test_final_line_without_newline() -> None:
    assert numbered(b"a\nlast") == [(1, 0, b"a"), (2, 2, b"last")]


def test_lines_spanning_chunk_boundaries() -> None:
    data = b"".join(b"line-%d\n" % i for i in range(1000))
    expected = numbered(data)
    assert len(expected) == 1000
    assert numbered(data, chunk_bytes=7) == expected
    assert numbered(data, chunk_bytes=1) == expected


def test_empty_file_has_no_lines() -> None:
    assert lines_of(b"") == []


def test_overlong_line_is_skipped_with_bounded_memory() -> None:
    limit = 1 << 20
    huge = b'{"x":"' + b"y" * (5 * limit) + b'"}'
    data = b"first\n" + huge + b"\nafter\nlast\n"
    tracemalloc.start()
    try:
        items = lines_of(data, max_line_bytes=limit, chunk_bytes=256 * 1024)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert items[0] == Line(1, 0, 6, b"first")
    assert items[1] == BadLine("f.ndjson", 2, 6, f"line over {limit} bytes")
    after_offset = 6 + len(huge) + 1
    assert items[2:] == [
        Line(3, after_offset, after_offset + 6, b"after"),
        Line(4, after_offset + 6, after_offset + 11, b"last"),
    ]
    # The 5 MiB line was never held whole (the input itself is not traced: it predates start).
    assert peak < 3 * limit


def test_overlong_line_inside_one_chunk() -> None:
    items = lines_of(b"ok\n" + b"z" * 50 + b"\nok2\n", max_line_bytes=10)
    assert [type(i).__name__ for i in items] == ["Line", "BadLine", "Line"]
    assert isinstance(items[1], BadLine) and items[1].line == 2
    assert items[1].reason == "line over 10 bytes"


def test_overlong_final_line_without_newline() -> None:
    items = lines_of(b"ok\n" + b"z" * 50, max_line_bytes=10, chunk_bytes=8)
    assert items[-1] == BadLine("f.ndjson", 2, 3, "line over 10 bytes")
    assert len(items) == 2


def test_line_at_exactly_the_limit_is_kept() -> None:
    assert numbered(b"x" * 10 + b"\n", max_line_bytes=10) == [(1, 0, b"x" * 10)]


@pytest.mark.parametrize("compress", [gzip.compress, zstandard.ZstdCompressor().compress])
def test_compressed_files_frame_the_same(compress: object) -> None:
    data = b"".join(b'{"i":%d}\r\n' % i for i in range(5000)) + b"\n\ntail"
    assert numbered(compress(data)) == numbered(data)  # type: ignore[operator]


def truncated_gzip() -> tuple[bytes, bytes]:
    data = b"".join(b'{"i":%d,"pad":"%s"}\n' % (i, b"p" * (i % 50)) for i in range(200_000))
    blob = gzip.compress(data, compresslevel=1)
    return data, blob[: len(blob) // 2]


def test_truncated_gzip_gives_lines_so_far_then_one_error() -> None:
    data, blob = truncated_gzip()
    items = list(LineReader(io.BytesIO(blob), file="t.gz", chunk_bytes=64 * 1024))
    *good, last = items
    assert isinstance(last, BadLine)
    assert last.file == "t.gz"
    assert last.reason.startswith("truncated gzip stream after ")
    assert good and all(isinstance(i, Line) for i in good)
    originals = data.split(b"\n")
    assert [i.data for i in good if isinstance(i, Line)] == originals[: len(good)]
    assert last.line == len(good) + 1
    assert last.offset == sum(len(x) + 1 for x in originals[: len(good)])


def decodable_prefix(blob: bytes) -> int:
    """How many bytes a truncated gzip member can give at most."""
    return len(zlib.decompressobj(wbits=31).decompress(blob))


def test_truncated_gzip_loses_little_before_the_cut() -> None:
    _, blob = truncated_gzip()
    items = list(LineReader(io.BytesIO(blob), file="t.gz"))  # default 1 MiB chunks
    last = items[-1]
    assert isinstance(last, BadLine)
    available = decodable_prefix(blob)
    assert available > 1 << 20
    # Only the piece isal was decoding when it hit the cut is lost (256 KiB), not a chunk.
    assert available - 300 * 1024 < last.offset <= available


@pytest.mark.parametrize("chunk_bytes", [64 * 1024, 1 << 20])
def test_truncated_zstd_gives_lines_so_far_then_one_error(chunk_bytes: int) -> None:
    data = b"".join(b'{"i":%d}\n' % i for i in range(200_000))
    blob = zstandard.ZstdCompressor().compress(data)
    items = list(
        LineReader(io.BytesIO(blob[: len(blob) // 2]), file="t.zst", chunk_bytes=chunk_bytes)
    )
    *good, last = items
    assert isinstance(last, BadLine) and last.reason.startswith("truncated zstd stream after ")
    assert len(good) > 1000
    assert [i.data for i in good if isinstance(i, Line)] == data.split(b"\n")[: len(good)]


def test_corrupt_gzip_ends_with_one_error() -> None:
    data = b"".join(b'{"i":%d}\n' % i for i in range(100_000))
    blob = bytearray(gzip.compress(data))
    middle = len(blob) // 2
    blob[middle : middle + 32] = bytes(32)
    items = list(LineReader(io.BytesIO(bytes(blob)), file="c.gz", chunk_bytes=64 * 1024))
    errors = [i for i in items if isinstance(i, BadLine)]
    assert len(errors) == 1
    assert items[-1] is errors[0]
    assert errors[0].reason.startswith("corrupt gzip data: ")
    assert errors[0].fatal
    # What zlib decodes before the damage comes out: the lines before it are all there.
    assert [i.data for i in items[:40_000]] == data.split(b"\n")[:40_000]


def test_resume_plain_file_by_seeking() -> None:
    data = b"".join(b"line-%d\n" % i for i in range(100)) + b"\nend"
    everything = lines_of(data)
    done = everything[41]
    assert isinstance(done, Line)
    rest = list(LineReader(io.BytesIO(data), start=Checkpoint(done.number, done.end)))
    assert rest == everything[42:]
    assert rest[-1] == Line(102, len(data) - 3, len(data), b"end")


@pytest.mark.parametrize("compress", [gzip.compress, zstandard.ZstdCompressor().compress])
def test_resume_compressed_file(compress: object) -> None:
    data = b"".join(b'{"i":%d}\n' % i for i in range(3000))
    everything = lines_of(data)
    done = everything[1999]
    assert isinstance(done, Line)
    blob = compress(data)  # type: ignore[operator]
    reader = LineReader(io.BytesIO(blob), start=Checkpoint(done.number, done.end))
    rest = list(reader)
    assert rest == everything[2000:]
    assert len(rest) == 1000
    assert reader.position == len(data)
    assert reader.compressed_position == len(blob)


def test_resume_past_the_end_of_a_compressed_file_is_an_error_record() -> None:
    blob = gzip.compress(b"a\nb\n")
    items = list(LineReader(io.BytesIO(blob), file="g", start=Checkpoint(5, 100)))
    assert len(items) == 1
    assert isinstance(items[0], BadLine)
    assert "cannot resume at byte 100" in items[0].reason


TRICKY = [
    {"s": 'quote " and backslash \\ and brackets ]}[{ and , comma', "n": [1, [2, {"x": []}]]},
    {"unicode": "caf\u00e9 \u2603", "esc": '\\"', "empty": {}},
    "a string element",
    -12.5e3,
    None,
    [],
]


def expected_elements(blob: bytes) -> list[bytes]:
    return [orjson.dumps(item) for item in orjson.loads(blob)]


@pytest.mark.parametrize("chunk_bytes", [1, 2, 3, 7, 64, 1 << 20])
def test_json_array_elements_across_chunk_boundaries(chunk_bytes: int) -> None:
    blob = b" \n" + orjson.dumps(TRICKY, option=orjson.OPT_INDENT_2) + b"\n\n"
    items = lines_of(blob, chunk_bytes=chunk_bytes)
    lines = [i for i in items if isinstance(i, Line)]
    assert lines == items
    assert [i.number for i in lines] == [1, 2, 3, 4, 5, 6]
    assert [orjson.loads(i.data) for i in items if isinstance(i, Line)] == TRICKY
    for item in items:
        assert isinstance(item, Line)
        assert blob[item.offset : item.end] == item.data  # the original bytes


def test_compact_json_array() -> None:
    blob = orjson.dumps(TRICKY)
    items = lines_of(blob, chunk_bytes=5)
    assert [i.data for i in items if isinstance(i, Line)] == expected_elements(blob)


def test_empty_json_array() -> None:
    assert lines_of(b"  [ ]\n") == []


def test_json_array_detection_can_be_overridden() -> None:
    data = b"[1]\n[2]\n"
    as_array = lines_of(data)
    assert isinstance(as_array[-1], BadLine)
    # Not silently dropped: the rest of the file goes with a fatal record.
    assert as_array[-1].reason.startswith("unexpected data after the JSON array at byte 4;")
    assert as_array[-1].data == b"[2]\n" and as_array[-1].fatal
    assert numbered(data, json_array=False) == [(1, 0, b"[1]"), (2, 4, b"[2]")]


def test_json_array_overlong_element_skipped_with_bounded_memory() -> None:
    limit = 1 << 20
    huge = b'{"big":"' + b"y" * (5 * limit) + b'","n":[1,2]}'
    blob = b'[{"a":1},' + huge + b',{"b":2}]'
    tracemalloc.start()
    try:
        items = lines_of(blob, max_line_bytes=limit, chunk_bytes=256 * 1024)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert items[0] == Line(1, 1, 8, b'{"a":1}')
    assert items[1] == BadLine("f.ndjson", 2, 9, f"array element over {limit} bytes")
    assert items[2] == Line(3, 10 + len(huge), 17 + len(huge), b'{"b":2}')
    assert len(items) == 3
    assert peak < 3 * limit


def test_json_array_resume_plain_by_seeking() -> None:
    blob = orjson.dumps(TRICKY, option=orjson.OPT_INDENT_2)
    everything = lines_of(blob)
    third = everything[2]
    assert isinstance(third, Line)
    rest = list(LineReader(io.BytesIO(blob), start=Checkpoint(3, third.end)))
    assert rest == everything[3:]


def test_truncated_gzip_json_array_ends_with_one_error() -> None:
    blob = orjson.dumps([{"i": i, "pad": "p" * (i % 50)} for i in range(50_000)])
    gz = gzip.compress(blob, compresslevel=1)
    items = list(LineReader(io.BytesIO(gz[: len(gz) // 2]), file="a.json.gz", chunk_bytes=4096))
    *good, last = items
    assert good and all(isinstance(i, Line) for i in good)
    assert isinstance(last, BadLine)
    assert last.reason.startswith("truncated gzip stream after ")
    assert last.line == len(good) + 1


def test_bad_line_to_dict() -> None:
    record = BadLine("s3://b/k.gz", 7, 120, "invalid JSON: x", b"{oops")
    assert record.to_dict() == {
        "file": "s3://b/k.gz",
        "line": 7,
        "offset": 120,
        "reason": "invalid JSON: x",
        "data": "{oops",
    }
    assert "data" not in BadLine("f", 1, 0, "line over 10 bytes").to_dict()


def _array_records(
    data: bytes, chunk_bytes: int, start: Checkpoint | None = None
) -> list[tuple[object, ...]]:
    reader = LineReader(io.BytesIO(data), file="a.json", chunk_bytes=chunk_bytes, start=start)
    return [
        (r.number, r.offset, r.end, r.data)
        if isinstance(r, Line)
        else ("bad", r.line, r.offset, r.reason)
        for r in reader
    ]


def _tricky_array(pretty: bool) -> bytes:
    """Objects holding arrays of objects and strings with `},{` in them: every kind of
    false element boundary the fast path has to see through."""
    elements = []
    for n in range(300):
        element = {
            "n": n,
            "items": [{"a": i} for i in range(n % 4)],
            "text": "looks like },{ a boundary" if n % 7 == 0 else "plain",
            "nested": {"deeper": {"x": [1, {"y": "}, {"}]}},
        }
        elements.append(orjson.dumps(element, option=orjson.OPT_INDENT_2 if pretty else 0))
    separator = b",\n  " if pretty else b","
    return b"[" + separator.join(elements) + b"]"


@pytest.mark.parametrize("pretty", [False, True])
@pytest.mark.parametrize("chunk_bytes", [97, 4096, 1 << 20])
def test_json_array_fast_path_matches_the_byte_walk(
    pretty: bool, chunk_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tailrace.pipeline.decoders import framing

    data = _tricky_array(pretty)
    fast = _array_records(data, chunk_bytes)
    monkeypatch.setattr(framing.ArrayScanner, "_fast", lambda self, buf, pos, out: False)
    walked = _array_records(data, chunk_bytes)
    assert fast == walked
    assert len(fast) == 300
    assert [orjson.loads(r[3])["n"] for r in fast] == list(range(300))  # type: ignore[arg-type]
    # each record's offsets frame exactly its bytes in the file
    assert all(data[r[1] : r[2]] == r[3] for r in fast)  # type: ignore[index]


def test_json_array_fast_path_isolates_a_broken_element() -> None:
    good = [orjson.dumps({"n": n, "o": {"p": [{"q": 1}]}}) for n in range(50)]
    good[20] = b'{"n": 20, "o": {"p": [{"q": }]}}'  # broken: the chunk falls back to the walk
    records = _array_records(b"[" + b",".join(good) + b"]", 1 << 20)
    lines = [r for r in records if r[0] != "bad"]
    assert len(lines) == 50  # the walk splits it; the JSON parser rejects it later
    assert lines[20][3] == good[20]


def test_json_array_fast_path_resumes_from_a_checkpoint() -> None:
    data = _tricky_array(False)
    every = _array_records(data, 4096)
    number, _, end, _ = every[149]
    resumed = _array_records(data, 4096, start=Checkpoint(number, end))  # type: ignore[arg-type]
    assert resumed == every[150:]


def test_clean_chunks_come_as_runs_and_the_rest_as_lines() -> None:
    from tailrace.pipeline.decoders.framing import LineRun

    clean = b'{"a":1}\n\n{"b":2}\n{"c":3}\n{"d":'
    [run, last] = LineReader(io.BytesIO(clean)).runs()  # one chunk: the file's head
    assert isinstance(run, LineRun)
    assert (run.number, run.offset, run.lines) == (
        0,
        0,
        [b'{"a":1}\n', b"\n", b'{"b":2}\n', b'{"c":3}\n'],
    )
    assert run.text[: run.size] == b"".join(run.lines)
    assert list(run.records()) == lines_of(clean)[:-1]
    assert last == Line(5, 25, 30, b'{"d":')
    # A chunk with a CR takes the careful path: its lines one by one.
    crlf = clean.replace(b"\n", b"\r\n")
    items = list(LineReader(io.BytesIO(crlf)).runs())
    assert all(isinstance(item, Line) for item in items)
    assert items == lines_of(crlf)


@pytest.mark.parametrize("chunk_bytes", [1, 5, 64, 1 << 20])
def test_runs_number_and_place_lines_like_single_lines(chunk_bytes: int) -> None:
    data = b"".join(b'{"i":%d}\n' % i + b"\n" * (i % 3) for i in range(300)) + b'{"end":1}'
    expected = numbered(data)
    assert numbered(data, chunk_bytes=chunk_bytes) == expected
    items = lines_of(data, chunk_bytes=chunk_bytes)
    assert [(i.offset, i.end) for i in items if isinstance(i, Line)] == [
        (i.offset, i.end) for i in lines_of(data) if isinstance(i, Line)
    ]
