from __future__ import annotations

import gzip
import io
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
import zstandard

from tailrace.pipeline.decoders.framing import BadLine, Checkpoint, Line
from tailrace.pipeline.errors import FieldPathError
from tailrace.pipeline.events import (
    Event,
    EventDecoder,
    EventFields,
    parse_event_time,
    parse_path,
    read_events,
)


def decode(raw: bytes, fields: EventFields | None = None) -> Event | BadLine:
    return EventDecoder(fields, file="f").decode(Line(3, 40, 40 + len(raw) + 1, raw))


def event(raw: bytes, fields: EventFields | None = None) -> Event:
    result = decode(raw, fields)
    assert isinstance(result, Event), result
    return result


def test_event_keeps_original_bytes_and_position() -> None:
    raw = b'{ "messageId" : "m1",  "b": 1.50 }'
    parsed = event(raw)
    assert parsed.raw is raw
    assert (parsed.line, parsed.offset, parsed.end) == (3, 40, 40 + len(raw) + 1)
    assert parsed.data == {"messageId": "m1", "b": 1.5}
    assert parsed.message_id == "m1"


@pytest.mark.parametrize(
    ("origin", "expected"),
    [
        ({"sourceId": "s1", "source_id": "s2", "slug": "s3"}, "s1"),
        ({"source_id": "s2", "slug": "s3"}, "s2"),
        ({"slug": "s3"}, "s3"),
        ({"sourceId": "", "slug": "s3"}, "s3"),
        ({}, None),
    ],
)
def test_stream_id_default_paths_first_found(origin: dict[str, str], expected: str | None) -> None:
    assert event(orjson.dumps({"origin": origin})).stream_id == expected


def test_stream_id_missing_origin() -> None:
    assert event(b'{"origin": "not an object"}').stream_id is None


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            {"messageCreated": "2024-01-02T03:04:05Z", "timestamp": "2020-01-01T00:00:00Z"},
            datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        ),
        (
            {"timestamp": "2024-01-02T03:04:05.123+02:00", "receivedAt": "2020-01-01"},
            datetime(2024, 1, 2, 1, 4, 5, 123000, tzinfo=UTC),
        ),
        ({"receivedAt": "2024-01-02T03:04:05"}, datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ({"timestamp": 1743532441581}, datetime(2025, 4, 1, 18, 34, 1, 581000, tzinfo=UTC)),
        ({"timestamp": "yesterday"}, None),
        ({}, None),
    ],
)
def test_time_default_paths(payload: dict[str, object], expected: datetime | None) -> None:
    parsed = event(orjson.dumps(payload))
    assert parsed.time == expected
    if parsed.time is not None:
        assert parsed.time.tzinfo is not None


def test_parse_event_time_rejects_booleans_and_huge_numbers() -> None:
    assert parse_event_time(True) is None
    assert parse_event_time(1e30) is None
    assert parse_event_time("2024-01-02T03:04:05-05:00") == datetime(
        2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-5))
    )


def test_jitsu_failover_line() -> None:
    raw = (
        b'{"messageId":"abc-1","messageCreated":"2024-05-01T10:00:00.000Z",'
        b'"type":"track","origin":{"baseUrl":"https://x","slug":"web","sourceId":"src-9"},'
        b'"receivedAt":"2024-05-01T09:59:59.000Z","httpPayload":{"event":"click"}}'
    )
    parsed = event(raw)
    assert parsed.stream_id == "src-9"
    assert parsed.message_id == "abc-1"
    assert parsed.time == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def test_configurable_paths() -> None:
    fields = EventFields.from_strings(stream_id=["ctx.stream"], message_id=["req.id"])
    parsed = event(b'{"ctx":{"stream":"s"},"req":{"id":3558},"timestamp":0}', fields)
    assert parsed.stream_id == "s"
    assert parsed.message_id == "3558"
    assert parsed.time == datetime(1970, 1, 1, tzinfo=UTC)  # time kept its defaults


def test_invalid_field_path() -> None:
    with pytest.raises(FieldPathError):
        parse_path("origin..slug")
    with pytest.raises(FieldPathError):
        parse_path("")


def test_invalid_utf8_says_where() -> None:
    raw = b'{"name":"caf\xc3\xa9 ok","b":"\xff\xfe"}'
    bad = decode(raw)
    assert isinstance(bad, BadLine)
    position = raw.index(b"\xff")
    assert position == 24
    assert bad.reason == f"invalid UTF-8 at byte {position}"
    assert (bad.file, bad.line, bad.offset, bad.data) == ("f", 3, 40, raw)


def test_invalid_json_gives_orjson_message() -> None:
    bad = decode(b'{"a": 1,')
    assert isinstance(bad, BadLine)
    assert bad.reason.startswith("invalid JSON: ")
    assert "UTF-8" not in bad.reason


def test_json_that_is_not_an_object() -> None:
    bad = decode(b"[1, 2]")
    assert isinstance(bad, BadLine)
    assert bad.reason == "JSON value is an array, not an object"


NDJSON = b'{"messageId":"1"}\nnot json\n\n{"messageId":"3"}\n'


@pytest.mark.parametrize(
    "compress", [lambda b: b, gzip.compress, zstandard.ZstdCompressor().compress]
)
def test_read_events_ndjson(compress: object) -> None:
    items = list(read_events(io.BytesIO(compress(NDJSON)), file="x"))  # type: ignore[operator]
    assert [type(i).__name__ for i in items] == ["Event", "BadLine", "Event"]
    assert [i.line for i in items] == [1, 2, 4]
    assert items[2].raw == b'{"messageId":"3"}'  # type: ignore[union-attr]


def test_read_events_resumes() -> None:
    items = list(read_events(io.BytesIO(NDJSON), start=Checkpoint(2, 27)))
    assert len(items) == 1
    assert isinstance(items[0], Event) and items[0].message_id == "3"


ARRAY = orjson.dumps(
    [
        {"timestamp": "2024-01-01T00:00:00.000Z", "req": {"id": 1}, "message": "a"},
        {"timestamp": "2024-01-01T00:00:01.000Z", "req": {"id": 2}, "message": "b"},
        7,
        {"time": 1743532441581, "message": "c", "x": None},
    ],
    option=orjson.OPT_INDENT_2,
)


@pytest.mark.parametrize(
    "compress", [lambda b: b, gzip.compress, zstandard.ZstdCompressor().compress]
)
def test_read_events_json_array_file(compress: object) -> None:
    blob = compress(b"\n  " + ARRAY)  # type: ignore[operator]
    items = list(read_events(io.BytesIO(blob), file="logs.json"))
    assert [type(i).__name__ for i in items] == ["Event", "Event", "BadLine", "Event"]
    first = items[0]
    assert isinstance(first, Event)
    assert first.line == 1
    assert first.data["message"] == "a"
    # The original bytes, indentation and all, not a re-serialisation.
    assert first.raw == ARRAY[first.offset - 3 : first.end - 3]
    assert first.raw.startswith(b'{\n    "timestamp"')
    assert first.time == datetime(2024, 1, 1, tzinfo=UTC)
    assert isinstance(items[2], BadLine)
    assert items[2].reason == "JSON value is a number, not an object"
    assert items[2].line == 3


def test_json_array_resume_from_element_end() -> None:
    items = list(read_events(io.BytesIO(gzip.compress(ARRAY))))
    second = items[1]
    assert isinstance(second, Event)
    rest = list(read_events(io.BytesIO(gzip.compress(ARRAY)), start=Checkpoint(2, second.end)))
    assert [i.line for i in rest] == [3, 4]
    assert rest == items[2:]


def test_json_array_truncated_file() -> None:
    cut = ARRAY[: ARRAY.index(b'"c"')]
    items = list(read_events(io.BytesIO(cut), file="x.json"))
    assert [type(i).__name__ for i in items] == ["Event", "Event", "BadLine", "BadLine"]
    last = items[-1]
    assert isinstance(last, BadLine)
    assert last.line == 4
    assert last.reason == "truncated JSON array: the file ends before its closing ]"


def test_json_array_invalid_element_is_one_bad_line() -> None:
    items = list(read_events(io.BytesIO(b'[{"a":1}, {"b":,}, {"c":3}]'), file="x.json"))
    assert [type(i).__name__ for i in items] == ["Event", "BadLine", "Event"]
    assert isinstance(items[1], BadLine) and items[1].reason.startswith("invalid JSON")
