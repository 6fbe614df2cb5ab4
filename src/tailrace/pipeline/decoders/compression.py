"""Decompression detected from a stream's first bytes, never from its name.

Every reader here is streaming and reads its input in bounded chunks, so memory stays flat
whatever the file size. Corrupt or truncated input raises `StreamDamage` (a
`DecompressionError`) with a message that can go straight into a dead-letter record, and only
once every byte decoded before the damage has been returned: a damaged stream gives what
``gzip -dc`` or ``zstd -dc`` would have written out before stopping.
"""

from __future__ import annotations

import enum
import zlib
from typing import BinaryIO, Protocol

import zstandard
from isal import igzip_lib

from tailrace.pipeline.errors import DecompressionError

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

# Compressed bytes read from the source at a time.
_INPUT_CHUNK = 128 * 1024
# A gzip member's compressed bytes are kept up to this size, to decode it again with zlib
# when isal stops in it: isal loses what its failing call had decoded, and may hold back the
# last byte or so before a cut, where zlib fed byte by byte gives everything. A longer member
# is not kept: there the loss is at most one piece (corrupt data) or a byte (truncation).
_GZIP_REPLAY_BYTES = 8 << 20
# A zstd block is at most 128 KiB decoded, 128 KiB + 3 stored: a longer unit is damage.
_ZSTD_MAX_UNIT = 1 << 20


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


class StreamDamage(DecompressionError):
    """The compressed stream is corrupt or cut short at stored byte `offset`: nothing after
    it can be decoded."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


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
        self._decoder: _Decoder | None = None
        if self.compression is Compression.GZIP:
            self._decoder = _Gzip(self._source)
        elif self.compression is Compression.ZSTD:
            self._decoder = _Zstd(self._source)
        self.position = 0

    @property
    def compressed_position(self) -> int:
        return self._source.consumed

    def read(self, size: int) -> bytes:
        """Up to `size` decompressed bytes; ``b""`` at the end.

        When the stream is damaged, every byte decoded before the damage is returned first;
        the call after the last of them raises `StreamDamage`, and so does every later one.
        """
        decoder = self._decoder
        if decoder is None:
            data = self._source.read(size)
        else:
            data = decoder.read(size)
            if not data and decoder.error is not None:
                raise decoder.error
        self.position += len(data)
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

    def stored_bytes_after(self, offset: int) -> int:
        """How many stored bytes the source holds from `offset` on: the rest is read (and
        dropped) to count them, so call it only once the stream is given up."""
        while self._source.read(_INPUT_CHUNK):
            pass
        return max(0, self._source.consumed - offset)


class _Decoder:
    """Decoded bytes handed out from a buffer that `_fill` tops up; `error` is set once the
    input is damaged, and `read` still returns what the buffer holds before giving ``b""``."""

    def __init__(self, source: _CountingReader) -> None:
        self._source = source
        self._input = b""  # stored bytes read and not yet given to the decompressor
        self._pending = b""
        self._pending_at = 0
        self._finished = False
        self.error: StreamDamage | None = None

    def read(self, size: int) -> bytes:
        """Up to `size` bytes (fewer where a piece ends: no copy to make up the size)."""
        while self._pending_at >= len(self._pending) and not self._finished:
            self._fill(size)
        start = self._pending_at
        data = self._pending[start : start + size]  # the object itself when it is all of it
        self._pending_at = start + len(data)
        if self._pending_at >= len(self._pending):
            self._pending = b""
            self._pending_at = 0
        return data

    def _push(self, parts: list[bytes]) -> None:
        if self._pending_at:
            self._pending = self._pending[self._pending_at :]
            self._pending_at = 0
        if self._pending:
            parts.insert(0, self._pending)
        self._pending = parts[0] if len(parts) == 1 else b"".join(parts)

    def _more(self) -> bool:
        """Reads more of the source into `_input`; False at its end."""
        chunk = self._source.read(_INPUT_CHUNK)
        if not chunk:
            return False
        self._input = self._input + chunk if self._input else chunk
        return True

    @property
    def _input_at(self) -> int:
        """The stored offset of `_input`'s first byte."""
        return self._source.consumed - len(self._input)

    def _fail(self, message: str, offset: int) -> None:
        self.error = StreamDamage(message, offset)
        self._finished = True

    def _fill(self, size: int) -> None:
        """Decodes more into the buffer (about `size` bytes, where the format allows)."""
        raise NotImplementedError


class _Gzip(_Decoder):
    """gzip, member after member, decoded by isal, a piece of the size asked for per call
    (handed on as it is: no copy)."""

    def __init__(self, source: _CountingReader) -> None:
        super().__init__(source)
        self._member: igzip_lib.IgzipDecompressor | None = None
        self._member_at = 0  # stored offset where the current member starts
        self._member_out = 0  # bytes it has given
        self._members = 0  # members read to their end
        self._kept: list[bytes] | None = []  # its stored bytes, for `_replay`
        self._kept_size = 0

    def _fill(self, size: int) -> None:
        member = self._member
        if member is None:
            if not self._input and not self._more():
                self._finished = True
            else:
                self._start_member()
            return
        data = b""
        if member.needs_input:
            if not self._input and not self._more():  # cut inside the member
                self._replay(None)
                if self._member is not None:
                    consumed = self._source.consumed
                    self._fail(
                        f"truncated gzip stream after {consumed} bytes: the member that"
                        f" starts at stored byte {self._member_at} has no end",
                        consumed,
                    )
                return
            data, self._input = self._input, b""
            if self._kept is not None:
                self._kept.append(data)
                self._kept_size += len(data)
                if self._kept_size > _GZIP_REPLAY_BYTES:
                    self._kept = None
        try:
            piece = member.decompress(data, size)
        except Exception as exc:
            # igzip_lib.IsalError, or others depending on where the damage is.
            self._replay(exc)
            return
        if piece:
            self._member_out += len(piece)
            self._push([piece])
        if member.eof:
            self._end_member(member.unused_data)

    def _start_member(self) -> None:
        # Zero bytes between or after members are padding (gzip and Python skip them too).
        stripped = self._input.lstrip(b"\0")
        if not stripped:
            self._input = b""
            return
        self._input = stripped
        if len(stripped) < 4 and self._more():
            return
        at = self._input_at
        if not self._input.startswith(GZIP_MAGIC):
            self._fail(
                f"corrupt gzip data: not a gzip member at stored byte {at}"
                f" (after {self._members} complete members)",
                at,
            )
            return
        if len(self._input) > 3 and self._input[3] & 0xE0:
            # RFC 1952 asks for an error here (as gzip and zlib give); isal ignores them.
            self._fail(f"corrupt gzip data: reserved header flags set at stored byte {at}", at)
            return
        self._member = igzip_lib.IgzipDecompressor(flag=igzip_lib.DECOMP_GZIP)
        self._member_at = at
        self._member_out = 0
        self._kept = []
        self._kept_size = 0

    def _end_member(self, unused: bytes) -> None:
        self._input = unused + self._input if self._input else unused
        self._member = None
        self._members += 1

    def _replay(self, failure: Exception | None) -> None:
        """isal stopped in this member (`failure`, or None for input that ends before the
        member does): decode the member again with zlib, fed byte by byte across the damage,
        to return every byte before it. Without the kept bytes, only the error is set."""
        kept, self._kept = self._kept, None
        if kept is None:
            if failure is not None:
                self._corrupt(failure, self._input_at)
            return
        member = zlib.decompressobj(wbits=31)
        skip = self._member_out
        out: list[bytes] = []
        at = self._member_at
        error: Exception | None = None

        def take(piece: bytes) -> None:
            nonlocal skip
            if skip >= len(piece):
                skip -= len(piece)
            else:
                out.append(piece[skip:])
                skip = 0

        index = 0
        for index, chunk in enumerate(kept):  # noqa: B007 (used after the loop)
            saved = member.copy()
            try:
                take(member.decompress(chunk))
            except zlib.error:
                member = saved
                for byte in range(len(chunk)):
                    try:
                        take(member.decompress(chunk[byte : byte + 1]))
                    except zlib.error as exc:
                        error, at = exc, at + byte
                        break
                    if member.eof:
                        break
            if error is not None or member.eof:
                break
            at += len(chunk)
        if out:
            self._member_out += sum(map(len, out))
            self._push(out)
        if error is not None:
            self._corrupt(error, at)
        elif member.eof:  # zlib read the member whole: go on after it
            rest = b"".join(kept[index + 1 :])
            self._end_member(member.unused_data + rest)
        elif failure is not None:  # zlib ran out of input where isal failed
            self._corrupt(failure, self._input_at)

    def _corrupt(self, exc: Exception, offset: int) -> None:
        self._fail(f"corrupt gzip data: {exc} (at stored byte {offset})", offset)


class _Zstd(_Decoder):
    """Zstandard, frame after frame, with truncation detected, fed one block at a time.

    zstandard's `stream_reader` returns a short stream silently when the input is cut in
    the middle of a frame; a decompressobj per frame tells whether the frame ended. A call
    that fails loses what it had decoded, so each call gets one unit of the frame (its
    header, a block, its checksum), found from the block headers: all that zstd decoded
    before a damaged block is returned.
    """

    def __init__(self, source: _CountingReader) -> None:
        super().__init__(source)
        self._decompressor = zstandard.ZstdDecompressor()
        self._frame: zstandard.ZstdDecompressionObj | None = None
        self._frame_at = 0
        # The next unit of the frame: "header", "block" or "checksum"; "stream" where the
        # units cannot be followed (damage): the input is then fed as it comes.
        self._state = "header"
        self._checksum = False

    def _fill(self, wanted: int) -> None:
        # Not `wanted`: a block's output comes whole (a call that fails loses it).
        size: int | None
        if self._frame is None:
            while len(self._input) < len(ZSTD_MAGIC) and self._more():
                pass
            if not self._input:
                self._finished = True
                return
            at = self._input_at
            if not self._input.startswith(ZSTD_MAGIC) and not _is_skippable(self._input):
                self._fail(f"corrupt zstd data: not a zstd frame at stored byte {at}", at)
                return
            self._frame = self._decompressor.decompressobj()
            self._frame_at = at
            self._state = "header"
        frame = self._frame
        size = self._unit(self._input, 0)
        while size is None or size > len(self._input):
            if not self._more():
                break
            size = self._unit(self._input, 0)
        buf, pos = self._input, 0
        if size is None or size > len(buf):  # the source ended: feed what there is
            size = len(buf)
        if not buf:  # the source ended inside the frame
            consumed = self._source.consumed
            self._fail(
                f"truncated zstd stream after {consumed} bytes: the frame that starts at"
                f" stored byte {self._frame_at} has no end",
                consumed,
            )
            return
        view = memoryview(buf)
        out: list[bytes] = []
        # Every whole unit of what is read (the last may be cut short by the source's end).
        while size is not None and pos < len(buf):
            at = self._source.consumed - len(buf) + pos
            unit = view[pos : pos + size]
            ended_here = self._note(unit)
            try:
                data = frame.decompress(unit)
            except zstandard.ZstdError as exc:
                self._input = b""
                if out:
                    self._push(out)
                self._fail(f"corrupt zstd data: {exc} (at stored byte {at})", at)
                return
            if data:
                out.append(data)
            pos += len(unit)
            if frame.eof:
                self._input = frame.unused_data + buf[pos:]
                self._frame = None
                if out:
                    self._push(out)
                return
            if ended_here:  # the headers say the frame ended, zstd does not: stop following
                self._state = "stream"
            size = self._unit(buf, pos)
            if size is not None and pos + size > len(buf):
                break
        self._input = buf[pos:]
        if out:
            self._push(out)

    def _unit(self, buf: bytes, pos: int) -> int | None:
        """The size of the unit at `buf[pos:]`; None while too few bytes are read to know."""
        state, have = self._state, len(buf) - pos
        if state == "stream":
            return have or None
        if state == "checksum":
            return 4
        if state == "block":
            if have < 3:
                return None
            header = int.from_bytes(buf[pos : pos + 3], "little")
            size = 3 + (1 if (header >> 1) & 3 == 1 else header >> 3)
        elif _is_skippable(buf[pos : pos + 4]):
            if have < 8:
                return None
            size = 8 + int.from_bytes(buf[pos + 4 : pos + 8], "little")
        else:
            if have < 5:
                return None
            descriptor = buf[pos + 4]
            single = descriptor & 0x20
            content = (1 if single else 0, 2, 4, 8)[descriptor >> 6]
            size = 5 + (0 if single else 1) + (0, 1, 2, 4)[descriptor & 3] + content
        if size > _ZSTD_MAX_UNIT:  # no valid unit is this long: damage (or a huge skippable)
            self._state = "stream"
            return have or None
        return size

    def _note(self, unit: memoryview) -> bool:
        """Moves to the next unit's state; True when `unit` ends the frame by its headers."""
        state = self._state
        if state == "header":
            if _is_skippable(bytes(unit[:4])):
                return True
            self._checksum = len(unit) > 4 and bool(unit[4] & 4)
            self._state = "block"
        elif state == "block":
            if unit[0] & 1:  # the frame's last block
                if not self._checksum:
                    self._state = "header"
                    return True
                self._state = "checksum"
        elif state == "checksum":
            self._state = "header"
            return True
        return False


def _is_skippable(head: bytes) -> bool:
    """Whether `head` starts a skippable frame (magic 0x184D2A50 to 0x184D2A5F)."""
    return len(head) >= 4 and head[1:4] == b"\x2a\x4d\x18" and head[0] & 0xF0 == 0x50


def open_decompressed(raw: BinaryIO | Readable) -> DecompressedStream:
    """Wrap `raw` (positioned at its start) in the decompressor its first bytes call for."""
    return DecompressedStream(raw)
