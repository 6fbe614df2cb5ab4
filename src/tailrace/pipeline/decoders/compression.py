"""Decompression detected from a stream's first bytes, never from its name.

Every reader here is streaming and reads its input in bounded chunks, so memory stays flat
whatever the file size. Corrupt or truncated input raises `DecompressionError` with a message
that can go straight into a dead-letter record.
"""

from __future__ import annotations

import enum
from typing import BinaryIO, Protocol

import zstandard
from isal import igzip

from tailrace.pipeline.errors import DecompressionError

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

# Compressed bytes handed to zstd per call. zstd's decompressobj returns everything a call
# produces, so the input size bounds the output: ~10-20x for JSON logs.
_ZSTD_INPUT_CHUNK = 128 * 1024
# Decompressed bytes asked of isal per call (see `_read_gzip`): a truncated stream loses
# what the failing call had decoded, so at most this much (256 KiB lost ~1,900 lines of a
# cut test file; 32 KiB costs no measurable speed).
_GZIP_PIECE = 32 * 1024


class Compression(enum.Enum):
    """How a stream's bytes are encoded."""

    PLAIN = "plain"
    """Not compressed (or not in a format recognised here): read as is."""
    GZIP = "gzip"
    """gzip, one member or several concatenated (``cat a.gz b.gz``)."""
    ZSTD = "zstd"
    """Zstandard, one frame or several."""


def detect_compression(head: bytes) -> Compression:
    """The compression of a stream whose first bytes are `head` (4 bytes are enough)."""
    if head.startswith(GZIP_MAGIC):
        return Compression.GZIP
    if head.startswith(ZSTD_MAGIC):
        return Compression.ZSTD
    return Compression.PLAIN


class Readable(Protocol):
    """The part of a binary file object the readers need."""

    def read(self, size: int = -1, /) -> bytes: ...


class _CountingReader:
    """Counts the bytes taken from the underlying stream; replays a peeked prefix first."""

    def __init__(self, raw: Readable, prefix: bytes) -> None:
        self._raw = raw
        self._prefix = prefix
        self.consumed = 0
        # The source's own readinto, where it has one, fills the decompressor's buffer
        # without an intermediate bytes object.
        self._readinto = getattr(raw, "readinto", None)

    def read(self, size: int = -1, /) -> bytes:
        if self._prefix:
            if size < 0 or size >= len(self._prefix):
                data = self._prefix
                self._prefix = b""
                rest = self._raw.read(-1 if size < 0 else size - len(data))
                data += rest
            else:
                data = self._prefix[:size]
                self._prefix = self._prefix[size:]
        else:
            data = self._raw.read(size)
        self.consumed += len(data)
        return data

    def readinto(self, buffer: bytearray | memoryview, /) -> int:
        if self._readinto is not None and not self._prefix:
            count: int = self._readinto(buffer) or 0
            self.consumed += count
            return count
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class DecompressedStream:
    """A binary stream decompressed according to its magic bytes.

    `read(size)` returns at most `size` decompressed bytes and ``b""`` at the end.
    `compressed_position` is how many bytes were taken from the source (for progress by
    bytes; decompressors read ahead, so it runs slightly ahead of the data returned) and
    `position` how many decompressed bytes were returned.
    """

    def __init__(self, raw: Readable, compression: Compression | None = None) -> None:
        head = b"" if compression is not None else raw.read(len(ZSTD_MAGIC))
        # A short first read from a pipe-like source: complete the magic if more is coming.
        while 0 < len(head) < len(ZSTD_MAGIC):
            more = raw.read(len(ZSTD_MAGIC) - len(head))
            if not more:
                break
            head += more
        self.compression = compression or detect_compression(head)
        self._source = _CountingReader(raw, head)
        self._gzip: igzip.IGzipFile | None = None
        self._zstd: _ZstdFrames | None = None
        if self.compression is Compression.GZIP:
            self._gzip = igzip.IGzipFile(fileobj=self._source, mode="rb")  # type: ignore[no-untyped-call]
        elif self.compression is Compression.ZSTD:
            self._zstd = _ZstdFrames(self._source)
        self.position = 0
        self._error: DecompressionError | None = None

    @property
    def compressed_position(self) -> int:
        return self._source.consumed

    def read(self, size: int) -> bytes:
        """Up to `size` decompressed bytes; ``b""`` at the end.

        When the stream breaks, the bytes decoded before the damage are returned first and
        `DecompressionError` is raised by the next call, so that callers lose as little as
        possible.
        """
        if self._error is not None:
            raise self._error
        if self._gzip is not None:
            data = self._read_gzip(size)
        elif self._zstd is not None:
            data = self._zstd.read(size)
            self._error = self._zstd.error
        else:
            data = self._source.read(size)
        self.position += len(data)
        if not data and self._error is not None:
            raise self._error
        return data

    def skip(self, count: int, chunk_size: int = 1 << 20) -> int:
        """Read and discard `count` decompressed bytes; returns how many were there."""
        skipped = 0
        while skipped < count:
            data = self.read(min(chunk_size, count - skipped))
            if not data:
                break
            skipped += len(data)
        return skipped

    def _read_gzip(self, size: int) -> bytes:
        assert self._gzip is not None
        # In pieces: a read that fails loses what it had decoded, so keep each loss small.
        parts: list[bytes] = []
        got = 0
        while got < size:
            try:
                piece = self._gzip.read(min(_GZIP_PIECE, size - got))
            except EOFError as exc:
                consumed = self._source.consumed
                self._error = DecompressionError(f"truncated gzip stream after {consumed} bytes")
                self._error.__cause__ = exc
                break
            except Exception as exc:
                # isal raises gzip.BadGzipFile (an OSError), isal_zlib.error or others
                # depending on where the damage is; each means the rest is unusable.
                self._error = DecompressionError(f"corrupt gzip data: {exc}")
                self._error.__cause__ = exc
                break
            if not piece:
                break
            parts.append(piece)
            got += len(piece)
        return parts[0] if len(parts) == 1 else b"".join(parts)


class _ZstdFrames:
    """Zstandard, frame after frame, with truncation detected.

    zstandard's `stream_reader` returns a short stream silently when the input is cut in the
    middle of a frame; a decompressobj per frame tells us whether the frame ended.
    """

    def __init__(self, source: _CountingReader) -> None:
        self._source = source
        self._decompressor = zstandard.ZstdDecompressor()
        self._frame = self._decompressor.decompressobj()
        self._frame_started = False
        self._pending = b""
        self._pending_at = 0
        self._finished = False
        self.error: DecompressionError | None = None

    def read(self, size: int) -> bytes:
        while len(self._pending) - self._pending_at < size and not self._finished:
            self._fill()
        start = self._pending_at
        data = self._pending[start : start + size]
        self._pending_at = start + len(data)
        if self._pending_at >= len(self._pending):
            self._pending = b""
            self._pending_at = 0
        return data

    def _fill(self) -> None:
        chunk = self._source.read(_ZSTD_INPUT_CHUNK)
        if not chunk:
            self._finished = True
            if self._frame_started and not self._frame.eof:
                consumed = self._source.consumed
                self.error = DecompressionError(f"truncated zstd stream after {consumed} bytes")
            return
        out = [self._pending[self._pending_at :]]
        while chunk:
            self._frame_started = True
            try:
                out.append(self._frame.decompress(chunk))
            except zstandard.ZstdError as exc:
                self._finished = True
                self.error = DecompressionError(f"corrupt zstd data: {exc}")
                self.error.__cause__ = exc
                break
            if not self._frame.eof:
                break
            chunk = self._frame.unused_data
            self._frame = self._decompressor.decompressobj()
            self._frame_started = False
        self._pending = b"".join(out)
        self._pending_at = 0


def open_decompressed(raw: BinaryIO | Readable) -> DecompressedStream:
    """Wrap `raw` (positioned at its start) in the decompressor its first bytes call for."""
    return DecompressedStream(raw)
