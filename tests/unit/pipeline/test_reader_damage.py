"""Damaged input: the reader gives every record that can be recovered, dead-letters the rest
with its bytes, and ends a file it could not read to its end with exactly one fatal record."""

from __future__ import annotations

import gzip
import io
import json
import zlib

import pytest
import zstandard

from tailrace.pipeline.decoders.framing import BadLine, Line, LineReader
from tailrace.pipeline.events import Event, read_events


def read(data: bytes, **options: object) -> list[Line | BadLine]:
    return list(LineReader(io.BytesIO(data), file="f", **options))  # type: ignore[arg-type]


def split(items: list[Line | BadLine]) -> tuple[list[Line], list[BadLine]]:
    lines = [i for i in items if isinstance(i, Line)]
    bad = [i for i in items if isinstance(i, BadLine)]
    return lines, bad


def objects(count: int) -> list[bytes]:
    return [json.dumps({"id": i, "message": f"hello {i}"}).encode() for i in range(count)]


# --- JSON arrays: a broken element loses nothing after it ----------------------------------


def test_unbalanced_quote_in_a_one_per_line_array_loses_only_that_element() -> None:
    elements = objects(1000)
    elements[500] = b'{"id": 500, "message": "hello 500}'
    data = b"[\n" + b",\n".join(elements) + b"\n]\n"
    lines, bad = split(read(data))
    assert [line.data for line in lines] == elements[:500] + elements[501:]
    assert [line.number for line in lines] == [n for n in range(1, 1001) if n != 501]
    [broken] = bad
    assert (broken.line, broken.data, broken.fatal) == (501, elements[500], False)
    assert broken.offset == data.index(elements[500])
    assert "string runs into the end of its line" in broken.reason


@pytest.mark.parametrize("chunk_bytes", [7, 4096])
def test_unbalanced_quote_in_a_pretty_printed_array(chunk_bytes: int) -> None:
    values = [{"id": i, "tags": ["a", {"b": i}], "m": f"text {i}"} for i in range(60)]
    text = json.dumps(values, indent=2).encode()
    damaged = text.replace(b'"text 30"', b'"text 30', 1)
    lines, bad = split(read(damaged, chunk_bytes=chunk_bytes))
    assert [json.loads(line.data)["id"] for line in lines] == [i for i in range(60) if i != 30]
    [broken] = bad
    assert broken.line == 31 and not broken.fatal
    assert broken.data.startswith(b'{\n    "id": 30,') and b'"text 30' in broken.data


def test_mismatched_bracket_does_not_swallow_the_next_elements() -> None:
    elements = [json.dumps({"id": i, "tags": ["a", "b"]}).encode() for i in range(100)]
    elements[40] = b'{"id": 40, "tags": ["a", "b"}'
    data = b"[\n" + b",\n".join(elements) + b"\n]\n"
    lines, bad = split(read(data))
    assert [line.data for line in lines] == elements[:40] + elements[41:]
    [broken] = bad
    assert (broken.line, broken.data, broken.fatal) == (41, elements[40], False)
    assert "closes a bracket it does not match" in broken.reason


@pytest.mark.parametrize("damage", [b'"hello 500}', b'"hello 500"]}'])
def test_broken_element_in_a_one_line_array_is_fatal_with_the_rest(damage: bytes) -> None:
    elements = objects(1000)
    elements[500] = b'{"id": 500, "message": ' + damage
    data = b"[" + b",".join(elements) + b"]"
    lines, bad = split(read(data, max_line_bytes=4096))
    assert [line.data for line in lines] == elements[:500]
    [last] = bad
    assert last.fatal and last.line == 501
    start = data.index(elements[500])
    assert last.offset == start
    assert last.data == data[start : start + 4096]  # the unread rest, bounded
    assert f"the {len(data) - start} bytes from byte {start} to the end" in last.reason


# --- Compressed streams: everything before the damage --------------------------------------


def ndjson(count: int) -> bytes:
    return b"".join(b'{"i":%d,"pad":"%s"}\n' % (i, b"p" * (i % 37)) for i in range(count))


def test_gzip_member_followed_by_garbage_gives_every_line() -> None:
    data = ndjson(5000)
    blob = gzip.compress(data, mtime=0)
    items = read(blob + b"this is not gzip at all" * 10)
    lines, bad = split(items)
    assert [line.data for line in lines] == data.split(b"\n")[:-1]
    [damage] = bad
    assert damage is items[-1] and damage.fatal
    assert f"stored byte {len(blob)}" in damage.reason
    assert "230 stored bytes from there on are not read" in damage.reason


def test_gzip_trailing_zero_padding_is_not_damage() -> None:
    data = ndjson(100)
    lines, bad = split(read(gzip.compress(data) + bytes(100)))
    assert len(lines) == 100 and bad == []


def prefixes(blob: bytes, decompressor: object, error: type[Exception]) -> _Prefixes:
    """What the decompressor gives of `blob[:k]`, for every k (fed byte by byte: a cut is not
    an error for it, and it stops at the first that is)."""
    pieces, sizes = [], [0]
    for at in range(len(blob)):
        try:
            pieces.append(decompressor.decompress(blob[at : at + 1]))  # type: ignore[attr-defined]
        except error:
            break
        sizes.append(sizes[-1] + len(pieces[-1]))
    whole = b"".join(pieces)
    return _Prefixes(whole, sizes)


class _Prefixes:
    def __init__(self, whole: bytes, sizes: list[int]) -> None:
        self.whole, self.sizes = whole, sizes

    def __getitem__(self, cut: int) -> bytes:
        return self.whole[: self.sizes[cut]]


def zlib_prefixes(blob: bytes) -> _Prefixes:
    return prefixes(blob, zlib.decompressobj(wbits=31), zlib.error)


def zstd_prefixes(blob: bytes) -> _Prefixes:
    return prefixes(blob, zstandard.ZstdDecompressor().decompressobj(), zstandard.ZstdError)


def check_cut(items: list[Line | BadLine], decoded: bytes) -> None:
    """The whole lines of `decoded` come out; the line it cuts is the fatal record's data."""
    lines, bad = split(items)
    whole = decoded[: decoded.rfind(b"\n") + 1]
    assert [line.data for line in lines] == whole.split(b"\n")[:-1]
    [damage] = bad
    assert damage is items[-1] and damage.fatal
    assert damage.offset == len(whole)
    assert damage.data == decoded[len(whole) :]
    assert damage.line == len(lines) + 1


@pytest.mark.parametrize("chunk_bytes", [64, 128 * 1024])
def test_gzip_cut_at_every_byte(chunk_bytes: int) -> None:
    blob = gzip.compress(ndjson(120), mtime=0)
    decoded = zlib_prefixes(blob)
    for cut in range(2, len(blob)):  # 2 bytes: the magic that makes it gzip
        check_cut(read(blob[:cut], chunk_bytes=chunk_bytes), decoded[cut])


def test_zstd_cut_at_every_byte() -> None:
    data = ndjson(6000)  # two blocks (of 128 KiB decoded)
    blob = zstandard.ZstdCompressor(write_checksum=True, level=1).compress(data)
    decoded = zstd_prefixes(blob)
    # Every 29th byte (a read decodes up to 200 KiB) and the frame's last bytes.
    for cut in [*range(4, len(blob), 29), *range(len(blob) - 8, len(blob))]:
        check_cut(read(blob[:cut]), decoded[cut])


def test_large_truncated_gzip_loses_nothing_before_the_cut() -> None:
    data = ndjson(200_000)
    blob = gzip.compress(data, compresslevel=1)
    cut = blob[: len(blob) // 2]
    decoded = zlib.decompressobj(wbits=31).decompress(cut)  # a cut is not an error for zlib
    check_cut(read(cut), decoded)


def test_zstd_followed_by_garbage_gives_every_line() -> None:
    data = ndjson(5000)
    blob = zstandard.ZstdCompressor().compress(data)
    lines, bad = split(read(blob + b"garbage"))
    assert [line.data for line in lines] == data.split(b"\n")[:-1]
    [damage] = bad
    assert damage.fatal and f"not a zstd frame at stored byte {len(blob)}" in damage.reason


# --- Everything else the reader meets -------------------------------------------------------


def events(data: bytes) -> list[Event | BadLine | Line]:
    return list(read_events(io.BytesIO(data), file="f"))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", []),
        (b"   \n\t\n", ["BadLine", "BadLine"]),  # blank but not empty lines: invalid JSON
        (b"[]", []),
        (b"[", ["fatal"]),
        (b'\xef\xbb\xbf{"a":1}\n', ["Event"]),
        (b'\xef\xbb\xbf[{"a":1}]', ["Event"]),
        (b'{"a":1}\r\n{"b":2}\r\n', ["Event", "Event"]),
        (b'{"a":"\x00"}\n{"b":2}\n', ["BadLine", "Event"]),
        (b'{"a":"\xff"}\n{"b":2}\n', ["BadLine", "Event"]),
        (b'{"a":1}\n' + b"x" * 100 + b'\n{"b":2}', ["Event", "BadLine", "Event"]),
    ],
)
def test_odd_input_comes_out_or_is_a_bad_line_with_its_bytes(
    data: bytes, expected: list[str]
) -> None:
    items = events(data)
    kinds = ["fatal" if isinstance(i, BadLine) and i.fatal else type(i).__name__ for i in items]
    assert kinds == expected
    for item in items:
        if isinstance(item, BadLine) and not item.fatal and "over" not in item.reason:
            assert item.data and item.data in data  # its bytes, as in the file
            assert f"{item.line}" and item.reason


def test_overlong_line_reason_says_the_limit() -> None:
    items = list(read_events(io.BytesIO(b"x" * 100 + b"\n"), file="f", max_line_bytes=10))
    [bad] = items
    assert isinstance(bad, BadLine) and bad.reason == "line over 10 bytes" and bad.line == 1


def test_gzip_member_too_long_to_replay_loses_at_most_one_piece(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A member longer than the replay bound is not kept: isal's failing call loses what it
    had decoded (at most the piece asked for), and a cut may lose its last byte or two."""
    from tailrace.pipeline.decoders import compression

    monkeypatch.setattr(compression, "_GZIP_REPLAY_BYTES", 0)
    data = ndjson(3000)
    blob = gzip.compress(data, mtime=0)
    for cut in range(2, len(blob), 97):
        decoded = zlib.decompressobj(wbits=31).decompress(blob[:cut])
        lines, [damage] = split(read(blob[:cut]))
        got = b"".join(line.data + b"\n" for line in lines) + damage.data
        assert decoded.startswith(got) and len(decoded) - len(got) <= 16
    flipped = bytearray(blob)
    flipped[len(blob) // 2] ^= 0x10
    prefixes = zlib_prefixes(bytes(flipped))
    lines, [damage] = split(read(bytes(flipped)))
    got = b"".join(line.data + b"\n" for line in lines) + damage.data
    assert damage.fatal and prefixes.whole.startswith(got)
    assert len(prefixes.whole) - len(got) <= 128 * 1024  # the chunk the reader asks for
