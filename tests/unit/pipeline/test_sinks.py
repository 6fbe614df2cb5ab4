from __future__ import annotations

import base64
import contextlib
import io
import os
from pathlib import Path

import orjson
import pytest

import tailrace.pipeline.sinks as sinks
from tailrace.pipeline.decoders.framing import BadLine
from tailrace.pipeline.sinks import (
    FileSink,
    NullSink,
    Sink,
    SinkError,
    SinkKind,
    SinkURLError,
    StdoutSink,
    deadletter_path,
    deadletter_spec,
    encode_record,
    frame_lines,
    open_deadletter,
    open_sink,
    parse_sink_url,
)
from tailrace.pipeline.sinks.kafka import KafkaSink

# Unusual spacing, key order and escapes: a re-serialisation would change these bytes.
ODD = b'{ "z":1,   "a" : [1 ,2],"s":"\\u00e9\\/x", "f": 1.50 }'
PLAIN = b'{"messageId":"m1","n":2}'


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The inode of every fsync'd descriptor, in order; fsync itself still runs."""
    calls: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        calls.append(os.fstat(fd).st_ino)
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    return calls


# --- sinks ------------------------------------------------------------------------------


def test_file_sink_round_trip_is_byte_identical(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "out.ndjson"
    with FileSink(path) as sink:
        assert isinstance(sink, Sink)
        sink.write([ODD, PLAIN])
        sink.write([])
        sink.write([b"[]"])
    assert path.read_bytes() == ODD + b"\n" + PLAIN + b"\n" + b"[]\n"
    assert sink.closed


def test_file_sink_buffers_until_flush_then_counts(tmp_path: Path) -> None:
    path = tmp_path / "out.ndjson"
    sink = FileSink(path)
    sink.write([PLAIN, ODD])
    assert path.read_bytes() == b""
    assert (sink.counters.events, sink.counters.bytes) == (0, 0)
    sink.flush()
    assert path.read_bytes() == PLAIN + b"\n" + ODD + b"\n"
    assert (sink.counters.events, sink.counters.bytes) == (2, len(PLAIN) + len(ODD))
    sink.close()
    sink.close()  # closing twice is allowed
    with pytest.raises(SinkError, match="write after close"):
        sink.write([PLAIN])


def test_file_sink_writes_through_when_buffer_fills(tmp_path: Path) -> None:
    path = tmp_path / "out.ndjson"
    sink = FileSink(path, buffer_bytes=64)
    sink.write([b"x" * 70])
    # Handed to the kernel (whole lines only) but not yet counted as delivered.
    assert path.read_bytes() == b"x" * 70 + b"\n"
    assert sink.counters.events == 0
    sink.close()
    assert sink.counters.events == 1


def test_flush_fsyncs_the_file_and_a_new_files_directory(tmp_path: Path, fsyncs: list[int]) -> None:
    path = tmp_path / "out.ndjson"
    sink = FileSink(path)
    sink.write([PLAIN])
    assert fsyncs == []
    sink.flush()
    assert fsyncs == [path.stat().st_ino, tmp_path.stat().st_ino]
    sink.flush()  # nothing new: no fsync needed
    sink.write([ODD])
    sink.flush()
    assert fsyncs == [path.stat().st_ino, tmp_path.stat().st_ino, path.stat().st_ino]
    sink.close()
    assert len(fsyncs) == 3


def test_close_fsyncs_what_is_pending(tmp_path: Path, fsyncs: list[int]) -> None:
    path = tmp_path / "out.ndjson"
    with FileSink(path) as sink:
        sink.write([PLAIN])
    assert path.stat().st_ino in fsyncs
    assert sink.counters.events == 1


def test_reopen_appends_for_resume(tmp_path: Path, fsyncs: list[int]) -> None:
    path = tmp_path / "out.ndjson"
    with FileSink(path) as first:
        first.write([PLAIN])
    with FileSink(path) as second:
        second.write([ODD])
    assert path.read_bytes() == PLAIN + b"\n" + ODD + b"\n"
    # An existing file needs no fsync of its directory.
    assert fsyncs.count(tmp_path.stat().st_ino) == 1
    assert second.counters.events == 1


@pytest.mark.parametrize(
    "tail",
    [
        b'{"half":',  # a write cut by SIGKILL
        b"x" * 200_000,  # a tail longer than one read
        PLAIN + b"\n" + ODD + b"\n",  # whole lines of a flush that never recorded its length
    ],
)
def test_a_tail_past_the_durable_length_is_cut_before_the_next_write(
    tmp_path: Path, tail: bytes
) -> None:
    path = tmp_path / "out.ndjson"
    with FileSink(path) as first:
        first.write([PLAIN])
    with path.open("ab") as dying:  # what a worker killed mid-write leaves
        dying.write(tail)
    with FileSink(path) as sink:
        sink.write([ODD])
    assert path.read_bytes() == PLAIN + b"\n" + ODD + b"\n"
    assert sink.counters.bytes == len(ODD)


GZIP_WITH_NEWLINES = bytes.fromhex("1f8b0800000000000003") + b"\x0aab\x0acd\x00\x01" * 20


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("notes.txt", b"first line\nsecond line"),  # no final newline: the old sink cut it
        ("logs.ndjson.gz", GZIP_WITH_NEWLINES),  # the old sink cut it at its first \n byte
        ("out.ndjson", PLAIN + b"\n"),  # even whole NDJSON lines: not tailrace's
        ("data.bin", b"\n\n\x00"),
    ],
)
def test_a_file_tailrace_did_not_write_is_refused_and_left_untouched(
    tmp_path: Path, name: str, content: bytes
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(SinkError, match="did not write") as raised:
        FileSink(path).write([ODD])
    message = str(raised.value)
    assert str(path) in message and "name a new file" in message
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no record left beside it


def test_a_sink_url_to_an_existing_foreign_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_bytes(b"first line\nsecond line")
    with pytest.raises(SinkError, match="did not write"):
        open_sink("file:notes.txt")
    assert (tmp_path / "notes.txt").read_bytes() == b"first line\nsecond line"


def test_an_emptied_file_is_taken_over_and_a_shortened_one_refused(tmp_path: Path) -> None:
    path = tmp_path / "out.ndjson"
    with FileSink(path) as sink:
        sink.write([PLAIN, ODD])
    path.write_bytes(PLAIN + b"\n")  # someone cut what tailrace made durable
    with pytest.raises(SinkError, match="shorter than"):
        FileSink(path)
    assert path.read_bytes() == PLAIN + b"\n"
    path.write_bytes(b"")
    with FileSink(path) as again:
        again.write([ODD])
    assert path.read_bytes() == ODD + b"\n"


def test_a_replaced_file_is_not_taken_for_the_one_tailrace_wrote(tmp_path: Path) -> None:
    path = tmp_path / "out.ndjson"
    with FileSink(path) as sink:
        sink.write([PLAIN])
    other = tmp_path / "other"
    other.write_bytes(b"someone else's\n")
    other.replace(path)  # same name, another file: the record names the old one
    with pytest.raises(SinkError, match="did not write"):
        FileSink(path)
    assert path.read_bytes() == b"someone else's\n"


def test_a_writer_cuts_the_fragment_another_left_while_both_append(tmp_path: Path) -> None:
    path = tmp_path / "out.ndjson"
    with FileSink(path) as alive, FileSink(path) as other:
        alive.write([PLAIN])
        alive.flush()
        with path.open("ab") as dying:  # what a worker killed mid-write leaves
            dying.write(b'{"cut": "in the mid')
        other.write([ODD])
        other.flush()
        alive.write([PLAIN])
    assert path.read_bytes().split(b"\n") == [PLAIN, ODD, PLAIN, b""]


def test_file_sink_on_a_directory_is_a_sink_error(tmp_path: Path) -> None:
    with pytest.raises(SinkError, match="cannot open"):
        FileSink(tmp_path)


def test_newlines_inside_an_item_become_spaces() -> None:
    pretty = b'{\n  "a": 1,\r\n  "b": "x"\n}'
    framed = frame_lines([PLAIN, pretty, ODD])
    lines = framed.split(b"\n")
    assert lines == [PLAIN, b'{   "a": 1,\r   "b": "x" }', ODD, b""]
    assert orjson.loads(lines[1]) == {"a": 1, "b": "x"}
    assert frame_lines([PLAIN]) == PLAIN + b"\n"
    assert frame_lines([]) == b""


def test_stdout_sink_writes_original_bytes_and_counts_on_flush() -> None:
    stream = io.BytesIO()
    sink = StdoutSink(stream)
    sink.write([ODD, PLAIN])
    assert sink.counters.events == 0
    sink.flush()
    assert stream.getvalue() == ODD + b"\n" + PLAIN + b"\n"
    assert (sink.counters.events, sink.counters.bytes) == (2, len(ODD) + len(PLAIN))
    sink.close()
    assert not stream.closed


def test_stdout_sink_defaults_to_standard_output(capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    sink = open_sink("stdout:")
    sink.write([ODD])
    sink.close()
    assert capfdbinary.readouterr().out == ODD + b"\n"


def test_stdout_sink_reports_a_closed_pipe() -> None:
    class Broken(io.BytesIO):
        def write(self, data: object) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    sink = StdoutSink(Broken())
    with pytest.raises(SinkError, match="Broken pipe"):
        sink.write([PLAIN])


def test_null_sink_counts_only() -> None:
    sink = NullSink()
    sink.write([PLAIN, ODD])
    sink.write([b"x"])
    assert (sink.counters.events, sink.counters.bytes) == (3, len(PLAIN) + len(ODD) + 1)
    sink.flush()
    sink.close()
    with pytest.raises(SinkError):
        sink.write([b"x"])


# --- URLs -------------------------------------------------------------------------------


def test_file_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_sink_url("file:///var/x/out.ndjson").path == Path("/var/x/out.ndjson")
    assert parse_sink_url("file://localhost/var/out.ndjson").path == Path("/var/out.ndjson")
    assert parse_sink_url("FILE:/var/o%20k.ndjson").path == Path("/var/o k.ndjson")
    monkeypatch.chdir(tmp_path)
    spec = parse_sink_url("file:sub/out.ndjson")
    assert spec.kind is SinkKind.FILE
    assert spec.path == tmp_path / "sub" / "out.ndjson"
    assert spec.display == (tmp_path / "sub" / "out.ndjson").as_uri()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file://otherhost/x.ndjson", "only local files"),
        ("file:///dir/", "expected a file name"),
        ("file:", "expected a file name"),
        ("file:///x.ndjson?mode=a", "no query"),
        ("stdout:foo", "takes nothing"),
        ("null:x", "takes nothing"),
        ("kafka://", "expected kafka://host:port/topic"),
        ("kafka://h:99999/t", "out of range"),
        ("kafka://h:12ab/t", "cannot read host"),
        ("kafka://h/a/b", "invalid topic"),
        ("kafka://h/bad topic", "invalid topic"),
        ("kafka://h/t?acks=all", "no query"),
        ("postgresql://h/db?table=1bad", "invalid table name"),
        ("postgresql://h/db?table=a;drop", "invalid table name"),
        ("postgresql://h/db?table=a&table=b", "2 times"),
        ("s3://bucket/x", "unsupported sink"),
        ("out.ndjson", "has no scheme"),
        ("", "has no scheme"),
    ],
)
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(SinkURLError, match=message):
        parse_sink_url(url)


def test_unknown_scheme_lists_the_supported_ones() -> None:
    with pytest.raises(SinkURLError) as caught:
        parse_sink_url("mysql://u:hunter2@h/db")
    text = str(caught.value)
    for example in ("file:///", "stdout:", "null:", "kafka://", "postgresql://"):
        assert example in text
    assert "hunter2" not in text


def test_stdout_and_null_urls() -> None:
    for url in ("stdout:", "stdout://", "STDOUT:"):
        assert parse_sink_url(url).kind is SinkKind.STDOUT
    assert parse_sink_url("null:").kind is SinkKind.NULL
    assert parse_sink_url("null:").display == "null:"
    assert isinstance(open_sink("null:"), NullSink)


def test_kafka_urls() -> None:
    spec = parse_sink_url("kafka://broker:19092/my.topic-1")
    assert (spec.kind, spec.host, spec.port, spec.topic) == (
        SinkKind.KAFKA,
        "broker",
        19092,
        "my.topic-1",
    )
    default = parse_sink_url("kafka://127.0.0.1")
    assert (default.host, default.port, default.topic) == ("127.0.0.1", 9092, "bulker-destinations")
    assert parse_sink_url("kafka://h:1/").topic == "bulker-destinations"
    several = parse_sink_url("kafka://a:1,b,[::1]:3/t")
    assert several.hosts == (("a", 1), ("b", 9092), ("::1", 3))
    assert several.bootstrap_servers == "a:1,b:9092,::1:3"
    assert several.display == "kafka://a:1,b:9092,::1:3/t"


def test_kafka_credentials_are_refused_without_echo() -> None:
    with pytest.raises(SinkURLError, match="credentials") as caught:
        parse_sink_url("kafka://user:s3cr3t@h:9092/t")
    assert "s3cr3t" not in str(caught.value)


def test_postgresql_urls() -> None:
    spec = parse_sink_url("postgresql://app:pw@db.local:5433/events?sslmode=require&table=raw.logs")
    assert (spec.kind, spec.host, spec.port, spec.table) == (
        SinkKind.POSTGRESQL,
        "db.local",
        5433,
        "raw.logs",
    )
    assert spec.dsn == "postgresql://app:pw@db.local:5433/events?sslmode=require"
    default = parse_sink_url("postgres://localhost/test")
    assert (default.port, default.table) == (5432, "logs")
    assert default.dsn == "postgresql://localhost/test"
    socket = parse_sink_url("postgresql:///test")
    assert (socket.host, socket.table, socket.dsn) == (None, "logs", "postgresql:///test")


def test_postgresql_password_never_shown() -> None:
    secret = "Zq9-s3cr3t"
    for url in (  # port 1: nothing listens, the connection is refused at once
        f"postgresql://app:{secret}@127.0.0.1:1/db?table=logs",
        f"postgresql://app@127.0.0.1:1/db?password={secret}",
    ):
        spec = parse_sink_url(url)
        assert secret in (spec.dsn or "")
        assert secret not in repr(spec)
        assert secret not in spec.display
        with pytest.raises(SinkError) as failed:
            open_sink(spec)
        assert secret not in str(failed.value)
    for bad in (
        f"postgresql://app:{secret}@h/db?table=no-such!",
        f"postgresql://app:{secret}@h:99999/db",
        f"postgresql://app@h/db?password={secret}&table=1x",
    ):
        with pytest.raises(SinkURLError) as caught:
            parse_sink_url(bad)
        assert secret not in str(caught.value)


def test_kafka_urls_open_a_kafka_sink() -> None:
    # librdkafka connects lazily
    with contextlib.closing(open_sink("kafka://127.0.0.1:1/events")) as sink:
        assert isinstance(sink, KafkaSink)
        assert sink.topic == "events"


def test_open_sink_file(tmp_path: Path) -> None:
    path = tmp_path / "a" / "out.ndjson"
    sink = open_sink(path.as_uri())
    assert isinstance(sink, FileSink)
    sink.write([ODD])
    sink.close()
    assert path.read_bytes() == ODD + b"\n"


# --- dead letters -----------------------------------------------------------------------


def record(bad: BadLine, cap: int = 64 * 1024) -> dict[str, object]:
    line = encode_record(bad, cap)
    assert b"\n" not in line
    decoded = orjson.loads(line)
    assert isinstance(decoded, dict)
    return decoded


def test_record_of_valid_utf8_is_text() -> None:
    bad = BadLine("logs/a.ndjson.gz", 7, 120, "invalid JSON: x", '{"é": tru'.encode())
    assert record(bad) == {
        "file": "logs/a.ndjson.gz",
        "line": 7,
        "offset": 120,
        "reason": "invalid JSON: x",
        "data": '{"é": tru',
        "encoding": "utf-8",
        "size": 10,
        "truncated": False,
    }


def test_record_of_invalid_utf8_is_base64() -> None:
    data = b'{"a":"\xff\xfe bad"}'
    got = record(BadLine("f", 2, 9, "invalid UTF-8 at byte 6", data))
    assert got["encoding"] == "base64"
    assert base64.b64decode(str(got["data"])) == data
    assert (got["size"], got["truncated"]) == (len(data), False)


def test_record_of_a_huge_line_is_truncated() -> None:
    data = b'{"k":"' + b"v" * 200_000 + b'"}'
    got = record(BadLine("f", 1, 0, "too long", data))
    assert got["truncated"] is True
    assert got["size"] == len(data)
    assert got["data"] == data[: 64 * 1024].decode()
    huge_binary = b"\x80" * 100_000
    got = record(BadLine("f", 1, 0, "bad", huge_binary))
    assert (got["encoding"], got["truncated"]) == ("base64", True)
    assert base64.b64decode(str(got["data"])) == huge_binary[: 64 * 1024]


def test_truncation_keeps_whole_characters() -> None:
    data = "aé€😀".encode() * 3  # characters of 1, 2, 3 and 4 bytes
    for cap in range(1, len(data)):
        got = record(BadLine("f", 1, 0, "r", data), cap)
        text = str(got["data"])
        assert got["encoding"] == "utf-8"
        assert data.startswith(text.encode())
        assert cap - 3 <= len(text.encode()) <= cap


def test_record_without_data_and_with_an_undecodable_file_name() -> None:
    assert record(BadLine("f", 3, 10, "line longer than 1048576 bytes")) == {
        "file": "f",
        "line": 3,
        "offset": 10,
        "reason": "line longer than 1048576 bytes",
    }
    name = os.fsdecode(b"bad\xffname.ndjson")
    assert record(BadLine(name, 1, 0, "r"))["file"] == "bad\\udcffname.ndjson"


def test_deadletter_naming() -> None:
    assert deadletter_path(Path("/d/out.ndjson")) == Path("/d/out.deadletter.ndjson")
    assert deadletter_path(Path("/d/out.jsonl")) == Path("/d/out.deadletter.jsonl")
    assert deadletter_path(Path("/d/out.JSON")) == Path("/d/out.deadletter.JSON")
    assert deadletter_path(Path("/d/out")) == Path("/d/out.deadletter.ndjson")
    assert deadletter_path(Path("/d/out.txt")) == Path("/d/out.txt.deadletter.ndjson")
    kafka = deadletter_spec(parse_sink_url("kafka://h/events"))
    assert (kafka.kind, kafka.topic) == (SinkKind.KAFKA, "events.deadletter")
    pg = deadletter_spec(parse_sink_url("postgresql://h/db?table=raw.logs"))
    assert (pg.kind, pg.table) == (SinkKind.POSTGRESQL, "raw.logs_deadletter")
    assert deadletter_spec(parse_sink_url("null:")).kind is SinkKind.NULL


def test_stdout_dead_letters_go_to_a_file_in_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = deadletter_spec(parse_sink_url("stdout:"))
    assert spec.path == tmp_path / "tailrace-deadletter.ndjson"
    with open_deadletter(parse_sink_url("stdout:")) as writer:
        writer.write([BadLine("f", 1, 0, "r", b"x")])
    assert orjson.loads((tmp_path / "tailrace-deadletter.ndjson").read_bytes())["data"] == "x"


def test_deadletter_file_next_to_the_sink(tmp_path: Path, fsyncs: list[int]) -> None:
    spec = parse_sink_url((tmp_path / "out.ndjson").as_uri())
    target = tmp_path / "out.deadletter.ndjson"
    writer = open_deadletter(spec)
    assert writer.location == target.as_uri()
    writer.flush()
    assert not target.exists()  # created only for the first bad line
    bad = [
        BadLine("a.gz", 1, 0, "invalid JSON", b"{nope"),
        BadLine("a.gz", 2, 6, "invalid UTF-8 at byte 0", b"\xc3\x28"),
    ]
    writer.write(bad)
    writer.write([])
    writer.flush()
    assert target.stat().st_ino in fsyncs
    lines = target.read_bytes().splitlines()
    assert [orjson.loads(line)["line"] for line in lines] == [1, 2]
    assert writer.records == 2
    writer.write([BadLine("a.gz", 9, 60, "r", b"z")])
    writer.close()
    reopened = open_deadletter(spec)
    reopened.write([BadLine("b.gz", 1, 0, "r", b"y")])
    reopened.close()
    records = [orjson.loads(line) for line in target.read_bytes().splitlines()]
    assert [(r["file"], r["line"]) for r in records] == [
        ("a.gz", 1),
        ("a.gz", 2),
        ("a.gz", 9),
        ("b.gz", 1),
    ]


def test_null_dead_letters_are_counted_and_discarded(tmp_path: Path) -> None:
    writer = open_deadletter(parse_sink_url("null:"))
    writer.write([BadLine("f", 1, 0, "r", b"x")] * 3)
    writer.close()
    assert writer.records == 3
    assert writer.location == "null:"


def test_broker_and_database_dead_letters_open_only_on_the_first_record() -> None:
    kafka = open_deadletter(parse_sink_url("kafka://127.0.0.1:1/t"))
    assert kafka.location == "kafka://127.0.0.1:1/t.deadletter"
    database = open_deadletter(parse_sink_url("postgresql://127.0.0.1:1/db?table=logs"))
    assert database.location.endswith("(table logs_deadletter)")
    kafka.close()
    database.close()  # never opened: nothing to connect to


def test_public_surface() -> None:
    assert len(set(sinks.__all__)) == len(sinks.__all__)
    assert [name for name in sinks.__all__ if not hasattr(sinks, name)] == []
