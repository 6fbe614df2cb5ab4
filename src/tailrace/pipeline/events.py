"""Events: JSON lines (or JSON-array files) parsed, with the fields the pipeline needs.

An `Event` keeps the original line bytes: sinks forward those, never a re-serialisation.
Field locations are configurable; the defaults cover the reference documents and Jitsu's
failover lines.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from tailrace.pipeline.decoders.compression import Readable
from tailrace.pipeline.decoders.framing import (
    DEFAULT_MAX_LINE_BYTES,
    BadLine,
    Checkpoint,
    Line,
    LineReader,
)
from tailrace.pipeline.errors import FieldPathError

FieldPath = tuple[str, ...]


def parse_path(text: str) -> FieldPath:
    """``"origin.slug"`` -> ``("origin", "slug")``."""
    parts = tuple(text.split("."))
    if not text or any(not part for part in parts):
        raise FieldPathError(f"invalid field path {text!r}")
    return parts


def lookup(data: Any, path: FieldPath) -> Any:
    """The value at `path` in nested objects, or None when any step is missing."""
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
        if data is None:
            return None
    return data


@dataclass(frozen=True, slots=True)
class EventFields:
    """Where an event's fields are: for each, paths tried in order, the first present wins."""

    stream_id: tuple[FieldPath, ...] = (
        ("origin", "sourceId"),
        ("origin", "source_id"),
        ("origin", "slug"),
    )
    time: tuple[FieldPath, ...] = (("messageCreated",), ("timestamp",), ("receivedAt",))
    message_id: tuple[FieldPath, ...] = (("messageId",),)

    @classmethod
    def from_strings(
        cls,
        *,
        stream_id: Iterable[str] | None = None,
        time: Iterable[str] | None = None,
        message_id: Iterable[str] | None = None,
    ) -> EventFields:
        """Fields from dotted paths; a field left as None keeps its defaults."""
        default = cls()
        return cls(
            stream_id=_paths(stream_id, default.stream_id),
            time=_paths(time, default.time),
            message_id=_paths(message_id, default.message_id),
        )


def _paths(texts: Iterable[str] | None, default: tuple[FieldPath, ...]) -> tuple[FieldPath, ...]:
    return default if texts is None else tuple(parse_path(text) for text in texts)


@dataclass(slots=True)
class Event:
    """A parsed event with its position and original bytes.

    `time` is None when no time field is present or its value cannot be parsed.
    """

    line: int
    offset: int
    end: int
    raw: bytes
    data: dict[str, Any]
    stream_id: str | None
    time: datetime | None
    message_id: str | None


def parse_event_time(value: Any) -> datetime | None:
    """An ISO 8601 string (naive means UTC) or epoch milliseconds, as an aware datetime."""
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value / 1000, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


class EventDecoder:
    """Turns lines into `Event` records, or `BadLine` records saying what is wrong."""

    def __init__(self, fields: EventFields | None = None, *, file: str = "") -> None:
        self.fields = fields or EventFields()
        self.file = file

    def decode(self, line: Line) -> Event | BadLine:
        raw = line.data
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return BadLine(self.file, line.number, line.offset, _json_error(raw, exc), raw)
        if not isinstance(data, dict):
            reason = f"JSON value is {_describe(data)}, not an object"
            return BadLine(self.file, line.number, line.offset, reason, raw)
        fields = self.fields
        return Event(
            line=line.number,
            offset=line.offset,
            end=line.end,
            raw=raw,
            data=data,
            stream_id=_first_text(data, fields.stream_id),
            time=parse_event_time(_first(data, fields.time)),
            message_id=_first_text(data, fields.message_id),
        )


def _describe(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


def _first(data: dict[str, Any], paths: tuple[FieldPath, ...]) -> Any:
    for path in paths:
        value = lookup(data, path)
        if value is not None:
            return value
    return None


def _first_text(data: dict[str, Any], paths: tuple[FieldPath, ...]) -> str | None:
    for path in paths:
        value = lookup(data, path)
        if value is not None and value != "":
            return value if isinstance(value, str) else str(value)
    return None


def _json_error(raw: bytes, exc: orjson.JSONDecodeError) -> str:
    # orjson reports bad UTF-8 without its position; decoding again (only on this error
    # path) gives the exact byte.
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        return f"invalid UTF-8 at byte {bad.start}"
    return f"invalid JSON: {exc}"


def read_events(
    raw: Readable,
    *,
    file: str = "",
    fields: EventFields | None = None,
    start: Checkpoint | None = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> Iterator[Event | BadLine]:
    """The events of one stored file: NDJSON or a JSON array; plain, gzip or zstd.

    In a JSON array, element i plays the part of line i: its `raw` is its original bytes.
    """
    decoder = EventDecoder(fields, file=file)
    reader = LineReader(raw, file=file, start=start, max_line_bytes=max_line_bytes)
    decode = decoder.decode
    for item in reader:
        yield decode(item) if isinstance(item, Line) else item
