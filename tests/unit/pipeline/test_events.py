from __future__ import annotations

import gzip
import io
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest
import zstandard

from tailrace.pipeline.decoders.framing import BadLine, Checkpoint, Line
from tailrace.pipeline.errors import FieldPathError
from tailrace.pipeline.events import (
    Event,
    EventDecoder,
    EventFields,
    FieldPath,
    lookup,
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
    assert [i.line for i in items] == [1, 2, 4]  # type: ignore[union-attr]
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
    assert [i.line for i in rest] == [3, 4]  # type: ignore[union-attr]
    assert rest == items[2:]


def test_json_array_truncated_file() -> None:
    cut = ARRAY[: ARRAY.index(b'"c"')]
    items = list(read_events(io.BytesIO(cut), file="x.json"))
    assert [type(i).__name__ for i in items] == ["Event", "Event", "BadLine", "BadLine"]
    last = items[-1]
    assert isinstance(last, BadLine)
    assert last.line == 4
    assert last.reason.startswith("truncated JSON array: the file ends at byte ")
    assert last.fatal and last.data == cut[last.offset :]  # the cut element goes with it


def test_json_array_invalid_element_is_one_bad_line() -> None:
    items = list(read_events(io.BytesIO(b'[{"a":1}, {"b":,}, {"c":3}]'), file="x.json"))
    assert [type(i).__name__ for i in items] == ["Event", "BadLine", "Event"]
    assert isinstance(items[1], BadLine) and items[1].reason.startswith("invalid JSON")


# --- Partial decoding gives what the full parse gives --------------------------------------


def reference(raw: bytes, fields: EventFields, paths: tuple[FieldPath, ...]) -> tuple[object, ...]:
    """What decoding meant before partial decoding: orjson parses the whole line."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:
            raw.decode()
        except UnicodeDecodeError as bad:
            return ("bad", f"invalid UTF-8 at byte {bad.start}")
        return ("bad", f"invalid JSON: {exc}")
    if not isinstance(data, dict):
        return ("bad", "not an object")

    def first(alternatives: tuple[FieldPath, ...], text: bool) -> object:
        for path in alternatives:
            value = lookup(data, path)
            if value is not None and not (text and value == ""):
                return value if not text or isinstance(value, str) else str(value)
        return None

    return (
        "event",
        first(fields.stream_id, text=True),
        first(fields.message_id, text=True),
        parse_event_time(first(fields.time, text=False)),
        tuple(lookup(data, path) for path in paths),
    )


def outcome(result: Event | BadLine) -> tuple[object, ...]:
    if isinstance(result, BadLine):
        reason = result.reason
        return ("bad", "not an object" if reason.startswith("JSON value is") else reason)
    return ("event", result.stream_id, result.message_id, result.time, result.values)


DEEP = b"[" * 1100 + b"]" * 1100
TRICKY = [
    # Ordinary lines.
    b'{"messageId":"m","messageCreated":"2024-05-01T10:00:00Z","origin":{"sourceId":"s"}}',
    b'{"origin":{"slug":"web"},"timestamp":"2024-05-01T10:00:00+02:00","type":"track"}',
    b'  {"messageId" : "m" ,"origin" : { "slug" : "w" } }  ',
    b"{}",
    # `origin` (a prefix of the stream id paths) that is not an object.
    b'{"origin":"web","messageId":"m"}',
    b'{"origin":null,"messageId":"m"}',
    b'{"origin":42,"messageId":"m"}',
    b'{"origin":123456789012345678901234567890}',
    b'{"origin":[{"slug":"in an array"}]}',
    b'{"origin":true}',
    b'{"origin":{"sourceId":null,"source_id":null,"slug":"s"}}',
    b'{"origin":{"sourceId":"","slug":"s"}}',
    b'{"origin":{"sourceId":{"nested":1},"slug":"s"}}',
    # Ids that are not strings.
    b'{"messageId":3558,"origin":{"sourceId":12}}',
    b'{"messageId":1.5,"origin":{"slug":true}}',
    b'{"messageId":-0,"origin":{"slug":1e2}}',
    b'{"messageId":-0.0,"origin":{"slug":0.1}}',
    b'{"messageId":9223372036854775807}',
    b'{"messageId":9223372036854775808}',
    b'{"messageId":18446744073709551616}',
    b'{"messageId":-9223372036854775809}',
    b'{"messageId":123456789012345678901234567890}',
    b'{"messageId":["a"]}',
    b'{"messageId":{"a":1}}',
    b'{"x":123456789012345678901234567890,"messageId":"m"}',
    # Times.
    b'{"timestamp":1743532441581}',
    b'{"timestamp":1743532441581.5}',
    b'{"timestamp":-1000}',
    b'{"timestamp":1e30}',
    b'{"timestamp":true}',
    b'{"timestamp":"yesterday","receivedAt":"2024-01-01"}',
    b'{"messageCreated":null,"timestamp":"2024-01-02T03:04:05.123456"}',
    b'{"messageCreated":{"at":1},"timestamp":"2024-01-02"}',
    b'{"messageCreated":"","timestamp":"2024-01-02"}',
    # Duplicate keys: the last wins, also for objects.
    b'{"messageId":"a","messageId":"b"}',
    b'{"origin":{"slug":"a"},"origin":{"sourceId":"b"}}',
    b'{"origin":{"slug":"a"},"origin":"x"}',
    b'{"origin":"x","origin":{"slug":"a"}}',
    # Other fields (for the custom configuration).
    b'{"ctx":{"stream":"s","more":1},"req":{"id":7},"ts":"2024-01-01","a.b":"dot"}',
    b'{"ctx":{"stream":{"deeper":"d"}},"meta":{"time":1743532441581},"ts":null}',
    b'{"ctx":"flat","req":{"id":""},"meta":"2024-01-01","":"empty","\\u043a\\u043b\\u044e\\u0447":1}',
    b'{"ctx":{"stream":null},"type":"page","context":{"page":{"path":"/p"}}}',
    b'{"we\\"ird key":"w","back\\\\slash":"b","new\\nline":"n"}',
    # Escapes in keys and values.
    b'{"\\u006frigin":{"source\\u0049d":"esc"},"message\\u0049d":"m\\u00e9"}',
    b'{"messageId":"tab\\there \\"quoted\\" \\ud83d\\ude00"}',
    # Valid UTF-8 that is not ASCII.
    '{"messageId":"café","origin":{"slug":"ü"},"note":"日本語"}'.encode(),
    # Invalid UTF-8: in a skipped field, a used field, a key; overlong; a surrogate; cut.
    b'{"note":"\xff\xfe","messageId":"m","origin":{"slug":"x"}}',
    b'{"messageId":"\xff"}',
    b'{"\xff":1,"messageId":"m"}',
    b'{"note":"\xc0\xaf","messageId":"m"}',
    b'{"note":"\xed\xa0\x80","messageId":"m"}',
    b'{"messageId":"m","note":"\xe6\x97"}',
    # Not an object.
    b"[1, 2]",
    b"[1, 2",
    b'"text"',
    b"null",
    b"42",
    b"true",
    # Invalid JSON, in skipped and in used fields.
    b'{"a": 1,',
    b'{"messageId":"m"} x',
    b'{"x":[1,],"messageId":"m"}',
    b'{"x":01,"messageId":"m"}',
    b'{"x":"a\tb","messageId":"m"}',
    b'{"x":"\\ud800","messageId":"m"}',
    b'{"x":"\\q","messageId":"m"}',
    b'{"x":NaN,"messageId":"m"}',
    b"\xef\xbb\xbf{}",
    b"",
    # Nesting deeper than msgspec follows, in a skipped field and on a used path.
    b'{"x":' + DEEP + b',"messageId":"m"}',
    b'{"origin":' + DEEP + b',"messageId":"m"}',
]

PATHS: tuple[FieldPath, ...] = (
    ("type",),
    ("origin", "slug"),  # also a stream id path: shares the decoded `origin`
    ("context", "page", "path"),
    ("a.b",),  # a key with a dot, not a path
    ("",),
    ("ключ",),
)
CONFIGS = {
    "defaults": (EventFields(), ()),
    "predicates": (EventFields(), PATHS),
    "custom": (
        EventFields.from_strings(
            stream_id=["ctx.stream", "origin"], time=["ts", "meta.time"], message_id=["req.id"]
        ),
        (("ctx",), ("ctx", "stream", "deeper")),
    ),
    # Read, and a prefix of other paths: an object there takes the full parse.
    "leaf and prefix": (EventFields(), (("origin",), ("type",))),
    # Keys msgspec cannot name a field after: every line takes the full parse.
    "unnameable": (EventFields(), (('we"ird key',), ("back\\slash",), ("new\nline",))),
}


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("raw", TRICKY, ids=lambda raw: raw[:40].decode(errors="replace"))
def test_partial_decode_matches_full_parse(raw: bytes, config: str) -> None:
    fields, paths = CONFIGS[config]
    decoder = EventDecoder(fields, file="f", extra_paths=paths)
    result = decoder.decode(Line(3, 40, 40 + len(raw) + 1, raw))
    assert outcome(result) == reference(raw, fields, paths)
    if isinstance(result, Event):
        assert result.raw is raw
        assert result.paths is decoder.extra_paths
    else:
        assert (result.file, result.line, result.offset, result.data) == ("f", 3, 40, raw)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"messageId":"m","messageCreated":"2024-05-01T10:00:00Z","origin":{"sourceId":"s"}}',
        b'{"origin":"web","messageId":7}',
        b'{"origin":null,"timestamp":1743532441581}',
        b'{"origin":[1,{"slug":"x"}],"messageId":"m"}',
        '{"messageId":"café","origin":{"slug":"ü"}}'.encode(),
        b'{"x":123456789012345678901234567890,"x":{"y":[1e300]},"messageId":"m"}',
    ],
)
def test_common_lines_need_no_full_parse(raw: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    def full_parse(*_: object) -> None:
        raise AssertionError("took the full parse")

    monkeypatch.setattr(EventDecoder, "_decode_full", full_parse)
    monkeypatch.setattr(orjson, "loads", full_parse)
    assert isinstance(decode(raw), Event)


def test_numbers_beyond_float_range_in_skipped_fields_are_accepted() -> None:
    # The one difference from the full parse: orjson rejects a number beyond the float range
    # anywhere in the line; the partial decode does not read skipped numbers' values. It is
    # valid JSON (RFC 8259 leaves the range to implementations), so it goes on as an event.
    raw = b'{"x":1e400,"messageId":"m"}'
    parsed = event(raw)
    assert parsed.message_id == "m"
    with pytest.raises(orjson.JSONDecodeError):
        _ = parsed.data
    # Where it is read, it is as before.
    bad = decode(b'{"messageId":1e400}')
    assert isinstance(bad, BadLine) and bad.reason.startswith("invalid JSON: number is inf")


def test_invalid_utf8_in_a_skipped_field_is_a_bad_line() -> None:
    raw = b'{"a":"\xff\xfe","origin":{"slug":"x"}}'
    bad = decode(raw)
    assert isinstance(bad, BadLine)
    assert bad.reason == "invalid UTF-8 at byte 6"


def test_extra_paths_give_values_in_order() -> None:
    paths = (("type",), ("context", "page", "path"), ("missing", "deeper"))
    raw = b'{"type":"page","context":{"page":{"path":"/x"}},"missing":"scalar"}'
    parsed = EventDecoder(extra_paths=paths).decode(Line(1, 0, len(raw) + 1, raw))
    assert isinstance(parsed, Event)
    assert parsed.values == ("page", "/x", None)
    assert parsed.paths == paths
    assert parsed.value(("context", "page", "path")) == "/x"
    # A path not decoded comes from a full parse of the bytes.
    assert parsed.value(("context", "page")) == {"path": "/x"}
    assert parsed.value(("nothing",)) is None


def test_event_time_and_data_are_computed_on_access() -> None:
    parsed = event(b'{"messageCreated":"2024-01-02T03:04:05Z","b":[1,{"c":null}]}')
    assert parsed.time_value == "2024-01-02T03:04:05Z"
    assert parsed.time == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert parsed.data == {"messageCreated": "2024-01-02T03:04:05Z", "b": [1, {"c": None}]}


def test_empty_field_path_rejected() -> None:
    with pytest.raises(FieldPathError):
        EventDecoder(EventFields(message_id=((),)))


def test_read_events_with_extra_paths() -> None:
    data = b'{"type":"track","messageId":"1"}\n{"type":"page","messageId":"2"}\n'
    items = list(read_events(io.BytesIO(gzip.compress(data)), extra_paths=[("type",)]))
    assert [i.values for i in items if isinstance(i, Event)] == [("track",), ("page",)]


def test_runs_of_lines_decode_like_single_lines() -> None:
    """`decode_many` (one msgspec call per run) gives what `decode` gives line by line,
    including lines that make the run fall back: two values on one line, a non-object,
    non-ASCII, invalid UTF-8, and values the partial Struct cannot hold."""
    from tailrace.pipeline.decoders.framing import Line
    from tailrace.pipeline.events import EventDecoder

    raws = [
        b'{"messageId":"m1","origin":{"sourceId":"s"},"messageCreated":"2026-01-01T00:00:00Z"}',
        b'{"messageId":"m2","origin":"not an object"}',
        b'{"messageId":{"nested":1}}',
        b'{"a":1},{"b":2}',
        b"[1,2]",
        b'{"messageId":"caf\xc3\xa9"}',
        b'{"messageId":"bad \xff"}',
        b'{"messageId":"m3","origin":{"slug":"x"}}',
    ]
    lines = [Line(n, n * 100, n * 100 + len(raw), raw) for n, raw in enumerate(raws, 1)]
    decoder = EventDecoder()
    one_by_one = [decoder.decode(line) for line in lines]
    assert decoder.decode_many(lines) == one_by_one
    clean = [lines[0], lines[7]]  # a run msgspec takes in one call
    assert decoder.decode_many(clean) == [decoder.decode(line) for line in clean]


def test_a_stream_filter_gets_other_streams_as_bare_lines() -> None:
    """With `keep`, a clean run gives lines of other streams as their `Line` (no `Event`
    built); every other result is what `decode` gives."""
    from tailrace.pipeline.decoders.framing import Line
    from tailrace.pipeline.events import EventDecoder

    raws = [
        b'{"messageId":"m1","origin":{"sourceId":"keep"}}',
        b'{"messageId":"m2","origin":{"sourceId":"other"}}',
        b'{"messageId":"m3","origin":{"slug":"keep"}}',
        b'{"messageId":"m4"}',
    ]
    lines = [Line(n, n * 100, n * 100 + len(raw), raw) for n, raw in enumerate(raws, 1)]
    decoder = EventDecoder()
    got = decoder.decode_many(lines, keep=frozenset({"keep"}))
    assert got[0] == decoder.decode(lines[0])
    assert got[1] is lines[1]
    assert got[2] == decoder.decode(lines[2])
    assert got[3] is lines[3]  # no stream id: not in the filter's set either


# --- Batches: what the file loop reads --------------------------------------------------------

Summary = tuple[int, list[Event | BadLine], Checkpoint | None]


def _selected(item: Event | BadLine | Line, keep: frozenset[str] | None) -> bool:
    if isinstance(item, BadLine):
        return True
    return isinstance(item, Event) and (keep is None or item.stream_id in keep)


def summary_of_events(items: list[Event | BadLine | Line], keep: frozenset[str] | None) -> Summary:
    """Records, what passes the stream filter (and bad lines), and the checkpoint's place."""
    done = None
    for item in items:
        if isinstance(item, Event):
            done = Checkpoint(item.line, item.end)
        elif isinstance(item, Line):
            done = Checkpoint(item.number, item.end)
    return len(items), [i for i in items if _selected(i, keep)], done  # type: ignore[misc]


def summary_of_batches(blob: bytes, keep: frozenset[str] | None, **options: object) -> Summary:
    from tailrace.pipeline.events import read_batches

    records, items, done = 0, [], None
    for batch in read_batches(io.BytesIO(blob), file="f", stream_ids=keep, **options):  # type: ignore[arg-type]
        records += batch.records
        assert batch.filtered == batch.records - len(batch.items)
        items += [i for i in batch.items if _selected(i, keep)]
        done = batch.done or done
        if batch.ends_done:
            assert batch.done is not None
    return records, items, done


def _tricky_ndjson() -> bytes:
    """~12,000 lines, so several chunks: some clean, some with lines that need care."""
    lines = [
        b'{"messageId":"m%d","origin":{"sourceId":"s%d"},"timestamp":%d}' % (i, i % 5, i)
        for i in range(12_000)
    ]
    lines[10] = b'{"messageId":"m10","origin":"not an object"}'
    lines[20] = b'{"a":[1,'  # with the next line, one valid value over two lines
    lines[21] = b'{"b":2}]} {"messageId":"two values on a line"}'
    lines[30] = b""
    lines[40] = b'{"messageId":1e400,"origin":{"sourceId":"s0"}}'  # msgspec rejects it too
    lines[1500] = b'{"messageId":"caf\xc3\xa9","origin":{"sourceId":"s1"}}'
    lines[1600] = b'{"messageId":"bad \xff","origin":{"sourceId":"s1"}}'
    # Skipped by msgspec, rejected by the full parse that reading `origin` whole needs.
    lines[-1] = b'{"messageId":"last","origin":{"sourceId":"s1"},"x":2e400}'
    return b"\n".join(lines) + b"\n"


CORPUS = Path(__file__).resolve().parents[2] / "corpus" / "bad"
BLOBS = {
    "tricky": _tricky_ndjson(),
    "tricky gzip": gzip.compress(_tricky_ndjson()),
    **{path.name: path.read_bytes() for path in sorted(CORPUS.iterdir())},
}


@pytest.mark.parametrize("extra", [(), (("origin",),)], ids=["", "origin whole"])
@pytest.mark.parametrize("keep", [None, frozenset({"s1", "s3"})], ids=["all", "two streams"])
@pytest.mark.parametrize("name", sorted(BLOBS))
def test_batches_read_like_read_events(
    name: str, keep: frozenset[str] | None, extra: tuple[FieldPath, ...]
) -> None:
    blob = BLOBS[name]
    events = read_events(io.BytesIO(blob), file="f", stream_ids=keep, extra_paths=extra)
    expected = summary_of_events(list(events), keep)
    assert summary_of_batches(blob, keep, extra_paths=extra) == expected


def test_batches_resume_like_read_events() -> None:
    blob = BLOBS["tricky"]
    start = Checkpoint(1000, blob.index(b'{"messageId":"m1000"'))
    items = list(read_events(io.BytesIO(blob), file="f", start=start))
    assert summary_of_batches(blob, None, start=start) == summary_of_events(items, None)


def test_a_value_over_two_lines_is_two_bad_lines_in_a_run() -> None:
    """Lines that parse as many values as there are lines, but not one per line, are
    decoded line by line."""
    from tailrace.pipeline.events import read_batches

    blob = b'{"a":[1,\n{"b":2}]} {"messageId":"x"}\n{"messageId":"y"}\n'
    [batch] = read_batches(io.BytesIO(blob), file="f")
    assert [type(i).__name__ for i in batch.items] == ["BadLine", "BadLine", "Event"]
    assert (batch.records, batch.filtered, batch.done, batch.ends_done) == (
        3,
        0,
        Checkpoint(3, len(blob)),
        True,
    )


def test_a_clean_run_takes_one_call_and_builds_events_only_for_kept_streams(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tailrace.pipeline.events import read_batches

    def full_parse(*_: object) -> None:
        raise AssertionError("went line by line")

    monkeypatch.setattr(EventDecoder, "decode", full_parse)
    monkeypatch.setattr(EventDecoder, "decode_many", full_parse)
    blob = b"".join(
        b'{"messageId":"m%d","origin":{"slug":"s%d"}}\n' % (i, i % 4) for i in range(40)
    )
    [batch] = read_batches(io.BytesIO(blob), stream_ids=frozenset({"s0"}))
    assert [e.message_id for e in batch.items if isinstance(e, Event)] == [
        f"m{i}" for i in range(0, 40, 4)
    ]
    assert (batch.records, batch.filtered) == (40, 30)
    first = batch.items[0]
    assert isinstance(first, Event)
    assert (first.line, first.offset, first.raw) == (1, 0, blob[: blob.index(b"\n")])
