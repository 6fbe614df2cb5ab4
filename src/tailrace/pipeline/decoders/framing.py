"""Newline framing: a decompressed stream split into numbered lines with their offsets.

The hot path reads large chunks and hands on each one's whole lines as one `LineRun` (split
in C, no Python step per line), which the event decoder parses in one call.
A line longer than the limit is never held whole: it is skipped to its end and reported as a
`BadLine`. A corrupt or truncated compressed stream ends the file with one fatal `BadLine`,
after every whole line decoded before the damage, and carrying the line it cut.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from typing import Any

import msgspec

from tailrace.pipeline.decoders.compression import (
    Compression,
    DecompressedStream,
    Readable,
    StreamDamage,
    detect_compression,
)
from tailrace.pipeline.errors import DecompressionError

DEFAULT_MAX_LINE_BYTES = 1 << 20
# 128 KiB: a chunk and its lines stay in cache (measured ~2% faster than 256 KiB and ~15%
# than 1 MiB).
DEFAULT_CHUNK_BYTES = 128 * 1024
# How much of the start of a file is read to tell NDJSON from a JSON array.
_SNIFF_BYTES = 64 * 1024
_WHITESPACE = b" \t\r\n"
_BOM = b"\xef\xbb\xbf"


class Line(msgspec.Struct, gc=False):
    """One non-empty line: its 1-based number, the offsets of its start and of the next line
    in the uncompressed stream, and its bytes without the newline (nor a trailing CR).

    A msgspec struct without GC tracking: one is made per line, and that is cheaper to build
    than a dataclass."""

    number: int
    offset: int
    end: int
    data: bytes


class LineRun(msgspec.Struct, gc=False):
    """Consecutive whole lines from one chunk, each under the limit and without CR: what
    the hot path decodes in one call. Empty lines are among them (numbered, not records).

    `lines` keep their newline (stripping it would copy each line): the first starts at
    byte `offset` and is line `number + 1`. `text` holds them joined, in its first `size`
    bytes (what follows is the start of the next line, not part of the run)."""

    number: int
    offset: int
    lines: list[bytes]
    text: bytes
    size: int

    def records(self) -> Iterator[Line]:
        """The run as `Line` records (for readers that take one line at a time)."""
        number, at = self.number, self.offset
        for line in self.lines:
            number += 1
            end = at + len(line)
            if len(line) > 1:
                yield Line(number, at, end, line[:-1])
            at = end


@dataclass(slots=True)
class BadLine:
    """A line that cannot be processed, as it goes to the dead-letter output."""

    file: str
    line: int
    offset: int
    reason: str
    data: bytes = b""
    """The line's bytes when they are known and small enough to keep (not for overlong lines)."""
    fatal: bool = False
    """The reader could not go on past this point (a truncated or corrupt compressed stream, a
    JSON array it cannot resynchronise): the rest of the file is unread, so the file is not a
    clean success. The reader yields nothing after a fatal record."""

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "file": self.file,
            "line": self.line,
            "offset": self.offset,
            "reason": self.reason,
        }
        if self.data:
            record["data"] = self.data.decode("utf-8", errors="replace")
        if self.fatal:
            record["fatal"] = True
        return record


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where to resume a file: `line` lines are done and the next starts at byte `offset` of
    the uncompressed stream (a `Line`'s `number` and `end`)."""

    line: int = 0
    offset: int = 0


class LineReader:
    """Iterate the records of one file: `Line` records, and `BadLine` records for the bad ones.

    `raw` is the file as stored (compressed or not), positioned at its start. In NDJSON a
    record is a line: empty lines are not yielded but count in the numbering. A file whose
    first non-whitespace byte is ``[`` is a JSON array (unless `json_array` says otherwise):
    its records are the array's elements, numbered from 1, as their original bytes.
    `position` and `compressed_position` report progress in uncompressed and stored bytes.
    """

    def __init__(
        self,
        raw: Readable,
        *,
        file: str = "",
        start: Checkpoint | None = None,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        json_array: bool | None = None,
    ) -> None:
        self.file = file
        self.max_line_bytes = max_line_bytes
        self.chunk_bytes = chunk_bytes
        self._start = start or Checkpoint()
        self._raw = raw
        self._stream: DecompressedStream | None = None
        self._prefix = b""
        self._head = b""
        self._json_array = json_array

    @property
    def stream(self) -> DecompressedStream:
        """The decompressed stream (opened on first use, which reads the magic bytes)."""
        if self._stream is None:
            self._stream = self._open()
        return self._stream

    @property
    def position(self) -> int:
        return self.stream.position

    @property
    def compressed_position(self) -> int:
        return self.stream.compressed_position

    @property
    def is_json_array(self) -> bool:
        """Whether the file is one JSON array (its first non-whitespace byte is ``[``)."""
        if self._json_array is None:
            if self._stream is None:
                self._stream = self._open()  # which reads the head
            self._json_array = self._head.removeprefix(_BOM).lstrip(_WHITESPACE)[:1] == b"["
        return self._json_array

    def _open(self) -> DecompressedStream:
        offset = self._start.offset
        if offset and _is_plain_seekable(self._raw):
            self._head = self._raw.read(_SNIFF_BYTES)
            self._raw.seek(offset)  # type: ignore[attr-defined]
            # The bytes at `offset` are mid-file: never sniff them for magic numbers.
            stream = DecompressedStream(self._raw, Compression.PLAIN)
            stream.position = offset
            return stream
        stream = DecompressedStream(self._raw)
        # The head tells NDJSON from a JSON array, also when resuming mid-file.
        self._head = stream.read(_SNIFF_BYTES)
        if offset == 0 and self._head.startswith(_BOM):
            # A UTF-8 byte order mark (some Windows tools write one) is not part of line 1.
            offset = len(_BOM)
            self._start = Checkpoint(self._start.line, offset)
        if offset < len(self._head):
            self._prefix = self._head[offset:]
        elif offset > len(self._head):
            wanted = offset - len(self._head)
            skipped = stream.skip(wanted)
            if skipped < wanted:
                raise DecompressionError(
                    f"cannot resume at byte {offset}: the stream has {stream.position} bytes"
                )
        return stream

    def chunks(self) -> Iterator[bytes]:
        """The decompressed stream in chunks, from the resume point."""
        stream = self.stream
        if self._prefix:
            prefix, self._prefix = self._prefix, b""
            yield prefix
        size = self.chunk_bytes
        while chunk := stream.read(size):
            yield chunk

    def __iter__(self) -> Iterator[Line | BadLine]:
        for item in self.runs():
            if type(item) is LineRun:
                yield from item.records()
            else:
                yield item  # type: ignore[misc]

    def _elements(self) -> Iterator[Line | BadLine]:
        scanner = ArrayScanner(self.file, self.max_line_bytes, self._start)
        try:
            for chunk in self.chunks():
                items = scanner.feed(chunk)
                if items and type(items[-1]) is BadLine and items[-1].fatal:
                    yield from items[:-1]
                    yield self._unread(items[-1], scanner.tail)
                    return
                yield from items
        except DecompressionError as exc:
            yield self._damage(exc, scanner.fail(str(exc)))
            return
        yield from scanner.finish()

    def _unread(self, bad: BadLine, kept: list[bytes]) -> BadLine:
        """`bad`, where the reader gives up on a JSON array, with the rest of the stream:
        its first bytes (up to the limit) as data, and how many there are in the reason."""
        limit = self.max_line_bytes
        size = sum(map(len, kept))
        damage = ""
        try:
            for chunk in self.chunks():
                if size < limit:
                    kept.append(chunk[: limit - size])
                size += len(chunk)
        except DecompressionError as exc:
            damage = f"; then the stream is damaged: {exc}"
        data = b"".join(kept)[:limit]
        bad.reason += (
            f"; the {size} bytes from byte {bad.offset} to the end are not read"
            f" (the first {len(data)} are kept here){damage}"
        )
        bad.data = data
        bad.fatal = True
        return bad

    def _damage(self, exc: DecompressionError, bad: BadLine) -> BadLine:
        """`bad` (where the stream broke, with the cut line's bytes) as the fatal record for
        a damaged compressed stream, saying how much of the stored file is left unread."""
        if isinstance(exc, StreamDamage):
            unread = self.stream.stored_bytes_after(exc.offset)
            if unread:
                bad.reason += f"; {unread} stored bytes from there on are not read"
        if bad.data:
            bad.reason += (
                f"; line {bad.line} at byte {bad.offset} is cut after {len(bad.data)} bytes"
                " (kept here)"
            )
        bad.fatal = True
        return bad

    def runs(self) -> Iterator[LineRun | Line | BadLine]:
        """The file's records with clean NDJSON lines in runs: a `LineRun` per chunk whose
        whole lines are all under the limit and free of CR (the hot path: one object per
        chunk, none per line), `Line` and `BadLine` records for everything else, in order.
        A JSON array's elements come as `Line` records."""
        try:
            array = self.is_json_array
        except DecompressionError as exc:
            start = self._start
            yield self._damage(exc, BadLine(self.file, start.line + 1, start.offset, str(exc)))
            return
        if array:
            yield from self._elements()
        else:
            yield from self._runs()

    def _runs(self) -> Iterator[LineRun | Line | BadLine]:
        number = self._start.line
        offset = self._start.offset
        limit = self.max_line_bytes
        pending = b""
        skipping = False  # inside an overlong line, discarding until its newline
        chunks = self.chunks()
        while True:
            try:
                chunk = next(chunks)
            except StopIteration:
                break
            except DecompressionError as exc:
                # The cut line (not a whole one: it may have lost its end) goes with the error.
                part = b"" if skipping else pending
                yield self._damage(exc, BadLine(self.file, number + 1, offset, str(exc), part))
                return
            if skipping:
                newline = chunk.find(b"\n")
                if newline < 0:
                    offset += len(chunk)
                    continue
                offset += newline + 1
                chunk = chunk[newline + 1 :]
                skipping = False
            has_cr = b"\r" in chunk or pending[-1:] == b"\r"
            text = pending + chunk if pending else chunk
            if b"\n" not in chunk:  # inside a long line: nothing to split
                lines, pending = [], text
            else:
                pending = b""  # held in `text` only: a long line is not kept twice
                # BytesIO shares `text` and finds newlines with memchr: ~8x faster than
                # `bytes.split`, which compares byte by byte.
                lines = BytesIO(text).readlines()
                if lines[-1][-1:] != b"\n":
                    pending = lines.pop()
            size = len(text) - len(pending)
            if has_cr or (size > limit and max(map(len, lines), default=0) > limit + 1):
                parts = [line[:-1] for line in lines]
                yield from self._careful(parts, number, offset)
            elif lines:
                yield LineRun(number, offset, lines, text, size)
            number += len(lines)
            offset += size
            if len(pending) > limit:
                number += 1
                yield BadLine(self.file, number, offset, f"line over {limit} bytes")
                offset += len(pending)
                pending = b""
                skipping = True
        if pending and not skipping:
            number += 1
            end = offset + len(pending)
            part = pending[:-1] if pending[-1] == 13 else pending
            if part:
                yield Line(number, offset, end, part)

    def _careful(self, parts: list[bytes], number: int, offset: int) -> Iterator[Line | BadLine]:
        """The lines of one chunk when some end in CR or are over the limit."""
        limit = self.max_line_bytes
        for part in parts:
            number += 1
            end = offset + len(part) + 1
            if len(part) > limit:
                yield BadLine(self.file, number, offset, f"line over {limit} bytes")
            elif part[-1:] == b"\r":
                if len(part) > 1:
                    yield Line(number, offset, end, part[:-1])
            elif part:
                yield Line(number, offset, end, part)
            offset = end


def _is_plain_seekable(raw: Readable) -> bool:
    """Whether `raw` is an uncompressed, seekable stream (peeks its magic, then rewinds)."""
    seekable = getattr(raw, "seekable", None)
    if seekable is None or not seekable():
        return False
    tell = raw.tell  # type: ignore[attr-defined]
    seek = raw.seek  # type: ignore[attr-defined]
    here = tell()
    head = raw.read(4)
    seek(here)
    return detect_compression(head) is Compression.PLAIN


# Inside an array element, everything up to the next bracket or unfinished string: plain bytes
# and whole strings (with their escapes) in one regex match, so the Python loop below turns
# once per bracket, not once per byte or per string. A string never holds a raw newline
# (JSON forbids it): one that meets a newline is broken, and the scanner resynchronises.
# Possessive quantifiers (Python 3.11) spare the regex engine its backtracking bookkeeping:
# 100 MB/s here against 63 without them.
_CONTAINER_TEXT = re.compile(
    rb'[^"{}\[\]]*+(?:"[^"\\\n]*+(?:\\[^\n][^"\\\n]*+)*+"[^"{}\[\]]*+)*+', re.DOTALL
)
_STRING_REST = re.compile(rb'[^"\\\n]*+(?:\\[^\n][^"\\\n]*+)*+', re.DOTALL)
_SCALAR = re.compile(rb"[^,\]\s]*")
_GAP = re.compile(rb"[\s,]*")
_SPACE = re.compile(rb"\s*")
_LINE_GAP = re.compile(rb"[ \t\r,]*")
_OPEN = frozenset(b"{[")
_CLOSING = {ord("}"): ord("{"), ord("]"): ord("[")}
_BRACE = ord("{")
_BOUNDARIES = (b"},{", b"},\n", b"}, {", b"},\r\n", b"}\n,")
_FAST_TRIES = 4
_decode_elements = msgspec.json.Decoder(list[msgspec.Raw]).decode
_QUOTE = ord('"')
_BACKSLASH = ord("\\")
_NEWLINE = ord("\n")
# What may stand before an element on its line (its indentation) for the element to count as
# the first on the line, and how far back that is looked for.
_INDENT = b" \t\r,["
_MAX_INDENT = 256


def _skip(pattern: re.Pattern[bytes], buf: bytes, pos: int) -> int:
    match = pattern.match(buf, pos)
    assert match is not None  # every pattern here also matches the empty string
    return match.end()


class _Phase(enum.Enum):
    BEFORE = "before the array"
    BETWEEN = "between elements"
    ELEMENT = "inside an element"
    RESYNC = "after a broken element, looking for the next one"
    AFTER = "after the array"
    DONE = "done"


class ArrayScanner:
    """Splits a JSON array, fed in chunks, into its elements' original bytes.

    It follows only strings and brackets: each element's bytes are validated later by the
    JSON parser. An element over `max_bytes` is skipped to its end (never held whole) and
    reported, like an overlong line.

    An element the scanner itself finds broken (a string that runs into the end of its line,
    a bracket closed by the other kind) leaves it unsure where the element ends. When the
    element was the first on its line, the array is laid out one element per line (or
    pretty-printed): the next line whose first byte is the same opening byte at the same
    column starts the next element (no JSON string spans lines), so the broken element is
    reported with its bytes and reading goes on there. Otherwise (an array on one line)
    there is no safe place to go on from: a fatal record ends the file.
    """

    def __init__(self, file: str, max_bytes: int, start: Checkpoint) -> None:
        self.file = file
        self.max_bytes = max_bytes
        self.number = start.line
        self.base = start.offset  # offset of the current chunk in the uncompressed stream
        # A resume point is after an element (line 1 on); line 0 is the file's start, past
        # a byte order mark if there is one.
        self.phase = _Phase.BETWEEN if start.line else _Phase.BEFORE
        self.kind = 0  # the element's first byte: `{`, `[`, `"` or a scalar's
        self.stack = bytearray()  # the open brackets of the element
        self.in_string = False
        self.escaped = False  # the chunk ended on a backslash inside a string
        self.start = 0
        self.column = -1  # the element's column when it is the first on its line, else -1
        self.parts: list[bytes] = []
        self.size = 0
        self.head = b""  # the first `max_bytes` of an element over the limit
        self.last = 0  # the last non-whitespace byte seen
        self.broken = ""  # what is wrong with the element, once found broken
        self.line_gap = -1  # RESYNC: the indentation seen so far on a new line, else -1
        self.carry = -1 if start.line else 0  # the same at the end of the last chunk
        self.tail: list[bytes] = []  # a fatal record's data so far
        self._fast_end = 0
        self._fast_failed = False  # this chunk has no clean run of elements: walk it

    def feed(self, buf: bytes) -> list[Line | BadLine]:
        """The records of `buf`, the next chunk. A fatal record, if any, is the last: it
        ends the array, and `tail` holds the bytes from its offset to the chunk's end."""
        out: list[Line | BadLine] = []
        self._fast_failed = False
        pos, n = 0, len(buf)
        begin = 0  # where the current element starts in `buf`
        while pos < n:
            phase = self.phase
            if phase is _Phase.ELEMENT:
                pos, ended = self._scan(buf, pos)
                if ended:
                    out.append(self._element(buf[begin:pos], self.base + pos))
                elif self.broken and self.column < 0:
                    reason = f"broken JSON array element {self.number}: {self.broken}"
                    reason += ", in an array not laid out one element per line"
                    out.append(self._fatal(buf, begin, reason))
                    return out
                elif self.broken:
                    self.phase = _Phase.RESYNC
                continue
            if phase is _Phase.RESYNC:
                pos, found = self._resync(buf, pos)
                if found:
                    out.append(self._skipped(buf[begin:pos], self.base + pos))
                continue
            if phase is _Phase.DONE:
                break
            pos = _skip(_GAP if phase is _Phase.BETWEEN else _SPACE, buf, pos)
            if pos >= n:
                break
            byte = buf[pos]
            if phase is _Phase.BETWEEN and byte == 0x5D:  # "]"
                self.phase = _Phase.AFTER
                pos += 1
            elif phase is _Phase.BETWEEN and self._fast(buf, pos, out):
                pos = self._fast_end
            elif phase is _Phase.BETWEEN:
                begin = pos
                self._begin(byte, buf, pos)
                if byte in _OPEN or byte == _QUOTE:
                    pos += 1  # a scalar's first byte is left for _scan
            elif phase is _Phase.BEFORE and byte == 0x5B:  # "["
                self.phase = _Phase.BETWEEN
                pos += 1
            else:
                where = "before" if phase is _Phase.BEFORE else "after"
                reason = f"unexpected data {where} the JSON array at byte {self.base + pos}"
                self.number += 1
                self.start = self.base + pos
                self.parts, self.size = [], 0
                out.append(self._fatal(buf, pos, reason))
                return out
        if self.phase in (_Phase.ELEMENT, _Phase.RESYNC):
            self._keep(buf[begin:])
        self._carry(buf)
        end = buf[-64:].rstrip()
        if end:
            self.last = end[-1]
        self.base += n
        return out

    def _fast(self, buf: bytes, pos: int, out: list[Line | BadLine]) -> bool:
        """Take the whole object elements from `pos` up to a late element boundary of `buf`
        at once, parsed by msgspec in C. A boundary (``},{`` and its spaced forms) may also
        sit inside an element (an array of objects): a few candidates are tried from the
        end. False, with nothing taken, when none gives a clean run of elements (a broken
        element among them): the scanner then walks this chunk byte by byte as before,
        which isolates a broken element."""
        if self._fast_failed or buf[pos] != _BRACE:
            return False
        end = len(buf)
        for _ in range(_FAST_TRIES):
            cut = max(buf.rfind(boundary, pos, end) for boundary in _BOUNDARIES) + 1
            if cut <= pos:
                break
            try:
                elements = _decode_elements(b"[" + buf[pos:cut] + b"]")
            except (msgspec.DecodeError, msgspec.ValidationError):
                end = cut - 1
                continue
            self._take(buf, pos, cut, elements, out)
            return True
        self._fast_failed = True
        return False

    def _take(
        self, buf: bytes, pos: int, cut: int, elements: list[msgspec.Raw], out: list[Line | BadLine]
    ) -> None:
        number, limit = self.number, self.max_bytes
        origin = self.base
        find = buf.find
        at = pos
        for element in elements:
            data = bytes(element)
            at = find(data, at)  # only whitespace and one comma lie between elements
            number += 1
            end = at + len(data)
            if len(data) > limit:
                reason = f"array element over {limit} bytes"
                out.append(BadLine(self.file, number, origin + at, reason))
            else:
                out.append(Line(number, origin + at, origin + end, data))
            at = end
        self.number = number
        self._fast_end = cut  # what follows the last element is left to the scanner

    def fail(self, reason: str) -> BadLine:
        """The record for a stream that broke (decompression) in the middle of the array:
        with the bytes of the element it cut, if they are under the limit."""
        inside = self.phase in (_Phase.ELEMENT, _Phase.RESYNC)
        at = self.start if inside else self.base
        number = self.number if inside else self.number + 1
        data = b""
        if inside:
            data = b"".join(self.parts) if self.size <= self.max_bytes else self.head
        self.phase = _Phase.DONE
        return BadLine(self.file, number, at, reason, data)

    def finish(self) -> list[Line | BadLine]:
        """What the end of the stream means: nothing if the array was closed (or never
        opened: an empty or blank file); otherwise one fatal record, the file being cut."""
        if self.phase in (_Phase.AFTER, _Phase.DONE, _Phase.BEFORE):
            return []
        if self.phase is _Phase.BETWEEN:
            reason = f"truncated JSON array: the file ends at byte {self.base}"
            reason += " before the array's closing ]"
        elif self.phase is _Phase.RESYNC:
            reason = f"broken JSON array element {self.number}: {self.broken}, and the file"
            reason += f" ends at byte {self.base} before another element or the closing ]"
        elif self.last == 0x5D:  # "]": the file is whole, the element never closed
            reason = f"JSON array element {self.number} never ends: an unbalanced quote or"
            reason += f" bracket carries it to the end of the file at byte {self.base}"
        else:
            reason = f"truncated JSON array: the file ends at byte {self.base} inside element"
            reason += f" {self.number}, before the array's closing ]"
        inside = self.phase is not _Phase.BETWEEN
        bad = self.fail(reason)
        if inside:
            bad.reason += (
                f"; the {self.base - bad.offset} bytes from byte {bad.offset} to the end are"
                f" not read as elements (the first {len(bad.data)} are kept here)"
            )
        bad.fatal = True
        return [bad]

    def _begin(self, byte: int, buf: bytes, pos: int) -> None:
        self.phase = _Phase.ELEMENT
        self.number += 1
        self.kind = byte
        self.start = self.base + pos
        self.stack = bytearray(b"%c" % byte) if byte in _OPEN else bytearray()
        self.in_string = byte == _QUOTE
        self.parts = []
        self.size = 0
        self.head = b""
        self.broken = ""
        # The column, if only indentation stands before the element on its line.
        low = max(0, pos - _MAX_INDENT)
        newline = buf.rfind(b"\n", low, pos)
        if newline >= 0:
            indent = buf[newline + 1 : pos]
            self.column = -1 if indent.strip(_INDENT) else len(indent)
        elif low == 0 and self.carry >= 0 and not buf[:pos].strip(_INDENT):
            self.column = self.carry + pos
        else:
            self.column = -1
        if self.column > _MAX_INDENT:
            self.column = -1

    def _carry(self, buf: bytes) -> None:
        """Notes whether the chunk ends in indentation at the start of a line (and how much),
        for an element that begins in the next chunk."""
        n = len(buf)
        newline = buf.rfind(b"\n", max(0, n - _MAX_INDENT - 1))
        if newline >= 0:
            tail = buf[newline + 1 :]
            self.carry = -1 if tail.strip(_INDENT) else len(tail)
        elif self.carry >= 0 and not buf.strip(_INDENT):
            self.carry += n
        else:
            self.carry = -1
        if self.carry > _MAX_INDENT:
            self.carry = -1

    def _scan(self, buf: bytes, pos: int) -> tuple[int, bool]:
        """Advance through the current element; returns the position and whether it ended.
        An element found broken stops the scan there, with `broken` saying why."""
        n = len(buf)
        stack = self.stack
        while pos < n:
            if self.escaped:
                self.escaped = False
                if buf[pos] == _NEWLINE:
                    return self._break(pos, "a string runs into the end of its line")
                pos += 1
                continue
            if self.in_string:
                pos = _skip(_STRING_REST, buf, pos)
                if pos >= n:
                    return n, False
                byte = buf[pos]
                if byte == _BACKSLASH:
                    if pos + 1 < n:  # followed by a newline
                        return self._break(pos + 1, "a string runs into the end of its line")
                    self.escaped = True  # the escaped byte is in the next chunk
                    return n, False
                if byte == _NEWLINE:
                    return self._break(pos, "a string runs into the end of its line")
                pos += 1
                self.in_string = False
                if self.kind == _QUOTE:
                    return pos, True
                continue
            if not stack:  # a scalar element: it ends at a comma, "]" or whitespace
                pos = _skip(_SCALAR, buf, pos)
                return pos, pos < n
            pos = _skip(_CONTAINER_TEXT, buf, pos)
            if pos >= n:
                return n, False
            byte = buf[pos]
            pos += 1
            if byte == _QUOTE:
                self.in_string = True
            elif byte in _OPEN:
                stack.append(byte)
            elif stack.pop() != _CLOSING[byte]:
                return self._break(pos, f"{chr(byte)} closes a bracket it does not match")
            elif not stack:
                return pos, True
        return pos, False

    def _break(self, pos: int, what: str) -> tuple[int, bool]:
        self.broken = f"{what} at byte {self.base + pos}"
        self.in_string = self.escaped = False
        self.line_gap = -1
        return pos, False

    def _resync(self, buf: bytes, pos: int) -> tuple[int, bool]:
        """Looks for the line that starts the next element (or closes the array) after a
        broken one: its first byte is the element's opening byte at the element's column
        (or ``]`` no further right). Returns the position and whether it was found there."""
        n = len(buf)
        while pos < n:
            if self.line_gap < 0:
                newline = buf.find(b"\n", pos)
                if newline < 0:
                    return n, False
                pos = newline + 1
                self.line_gap = 0
            end = _skip(_LINE_GAP, buf, pos)
            self.line_gap += end - pos
            pos = end
            if pos >= n:
                return n, False
            column, self.line_gap = self.line_gap, -1
            byte = buf[pos]
            if (byte == self.kind and column == self.column) or (
                byte == 0x5D and column <= self.column
            ):
                return pos, True
        return pos, False

    def _skipped(self, last: bytes, end: int) -> BadLine:
        """The broken element, up to where the next one starts."""
        self.phase = _Phase.BETWEEN
        self._keep(last)
        reason = f"broken JSON array element: {self.broken}; the next element starts at byte {end}"
        data = b""
        if self.size <= self.max_bytes:
            data = b"".join(self.parts).rstrip(b" \t\r\n,")
        else:
            reason += f" (its {self.size} bytes are over the limit, not kept)"
        self.parts = []
        return BadLine(self.file, self.number, self.start, reason, data)

    def _fatal(self, buf: bytes, begin: int, reason: str) -> BadLine:
        """The record that ends the array where the scanner cannot go on: `tail` gets the
        bytes from its offset to the end of `buf` (as far as the limit)."""
        self.phase = _Phase.DONE
        kept = self.parts if self.size <= self.max_bytes else [self.head]
        self.tail = [*kept, buf[begin:]]
        self.parts = []
        return BadLine(self.file, self.number, self.start, reason, fatal=True)

    def _keep(self, part: bytes) -> None:
        if self.size <= self.max_bytes < self.size + len(part):
            self.parts.append(part[: self.max_bytes - self.size])
            self.head = b"".join(self.parts)
        self.size += len(part)
        if self.size <= self.max_bytes:
            self.parts.append(part)
        else:
            self.parts = []

    def _element(self, last: bytes, end: int) -> Line | BadLine:
        self.phase = _Phase.BETWEEN
        self._keep(last)
        if self.size > self.max_bytes:
            reason = f"array element over {self.max_bytes} bytes"
            return BadLine(self.file, self.number, self.start, reason)
        data = b"".join(self.parts) if len(self.parts) != 1 else self.parts[0]
        self.parts = []
        return Line(self.number, self.start, end, data)
