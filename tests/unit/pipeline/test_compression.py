from __future__ import annotations

import gzip
import io

import pytest
import zstandard

from tailrace.pipeline.decoders.compression import (
    Compression,
    DecompressedStream,
    detect_compression,
)
from tailrace.pipeline.errors import DecompressionError

DATA = b"".join(b'{"n":%d,"pad":"%s"}\n' % (i, b"abc" * (i % 7)) for i in range(20_000))


def read_all(stream: DecompressedStream, size: int = 64 * 1024) -> bytes:
    parts = []
    while chunk := stream.read(size):
        assert len(chunk) <= size
        parts.append(chunk)
    return b"".join(parts)


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\x1f\x8b\x08\x00", Compression.GZIP),
        (b"\x28\xb5\x2f\xfd", Compression.ZSTD),
        (b'{"a"', Compression.PLAIN),
        (b"", Compression.PLAIN),
        (b"\x1f", Compression.PLAIN),
    ],
)
def test_detect_compression_from_magic(head: bytes, expected: Compression) -> None:
    assert detect_compression(head) is expected


def test_plain_passes_through_and_counts_bytes() -> None:
    stream = DecompressedStream(io.BytesIO(DATA))
    assert stream.compression is Compression.PLAIN
    assert read_all(stream) == DATA
    assert stream.position == len(DATA)
    assert stream.compressed_position == len(DATA)


def test_gzip_detected_by_bytes_not_name() -> None:
    stream = DecompressedStream(io.BytesIO(gzip.compress(DATA)))
    assert stream.compression is Compression.GZIP
    assert read_all(stream) == DATA


def test_multi_member_gzip_reads_every_member() -> None:
    third = len(DATA) // 3
    blob = b"".join(gzip.compress(DATA[i : i + third]) for i in range(0, len(DATA), third))
    stream = DecompressedStream(io.BytesIO(blob))
    assert read_all(stream) == DATA
    assert stream.compressed_position == len(blob)


def test_multi_frame_zstd_reads_every_frame() -> None:
    half = len(DATA) // 2
    compressor = zstandard.ZstdCompressor()
    blob = compressor.compress(DATA[:half]) + compressor.compress(DATA[half:])
    stream = DecompressedStream(io.BytesIO(blob))
    assert stream.compression is Compression.ZSTD
    assert read_all(stream) == DATA
    assert stream.compressed_position == len(blob)


def test_truncated_gzip_raises_decompression_error() -> None:
    blob = gzip.compress(DATA)
    stream = DecompressedStream(io.BytesIO(blob[: len(blob) // 2]))
    with pytest.raises(DecompressionError, match=r"truncated gzip stream after \d+ bytes"):
        read_all(stream)


def test_corrupt_gzip_raises_decompression_error() -> None:
    blob = bytearray(gzip.compress(DATA))
    middle = len(blob) // 2
    blob[middle : middle + 16] = bytes(b ^ 0xFF for b in blob[middle : middle + 16])
    stream = DecompressedStream(io.BytesIO(bytes(blob)))
    with pytest.raises(DecompressionError, match="corrupt gzip data: "):
        read_all(stream)


def test_truncated_zstd_is_detected() -> None:
    # zstandard's stream_reader would return the short stream without complaint.
    blob = zstandard.ZstdCompressor().compress(DATA)
    stream = DecompressedStream(io.BytesIO(blob[: len(blob) // 2]))
    with pytest.raises(DecompressionError, match="truncated zstd stream"):
        read_all(stream)


def test_corrupt_zstd_raises_decompression_error() -> None:
    blob = bytearray(zstandard.ZstdCompressor(write_checksum=True).compress(DATA))
    middle = len(blob) // 2
    blob[middle : middle + 16] = bytes(b ^ 0xFF for b in blob[middle : middle + 16])
    stream = DecompressedStream(io.BytesIO(bytes(blob)))
    with pytest.raises(DecompressionError, match="corrupt zstd data"):
        read_all(stream)


def test_skip_discards_decompressed_bytes() -> None:
    stream = DecompressedStream(io.BytesIO(gzip.compress(DATA)))
    assert stream.skip(1000) == 1000
    assert stream.position == 1000
    assert read_all(stream) == DATA[1000:]
