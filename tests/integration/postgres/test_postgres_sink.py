from __future__ import annotations

import hashlib
import threading
import traceback
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
import pytest

from tailrace.pipeline.decoders.framing import BadLine, Checkpoint
from tailrace.pipeline.sinks import deadletter_spec, encode_record, parse_sink_url
from tailrace.pipeline.sinks.base import FileMark, SinkError
from tailrace.pipeline.sinks.postgres.sink import STREAM_ROWS, PostgresDeadLetterSink, PostgresSink

pytestmark = pytest.mark.postgres

# A distinctive password, so tests can check that no message ever shows it. Trust auth
# ignores it, so a URL holding it still connects.
SECRET = "pg-secret-Hq7rT2vLx9"

EVENT: dict[str, Any] = {
    "level": 30,
    "time": 1743532441581,
    "timestamp": "2024-01-01T00:00:00.000Z",
    "pid": 46,
    "hostname": "server-1",
    "req": {
        "id": 3558,
        "method": "GET",
        "url": "/api/endpoint?q=a\tb",
        "query": {"q": "a\tb"},
        "headers": {
            "x-forwarded-for": "184.182.215.20",
            "x-forwarded-proto": "https",
            "host": "api.example.com",
            "user-agent": "Mozilla/5.0",
        },
        "remoteAddress": "::ffff:10.0.236.240",
        "remotePort": 19250,
        "params": {"id": "7"},
    },
    "context": "ApiController",
    "message": 'Processing GET request: C:\\temp\n"quoted"',
    "authUserId": 1102,
    "processingTimeMs": 100.5,
    "cacheHit": True,
    "documentCount": 2,
    "lastUpdated": "2024-01-02T03:04:05.678+02:00",
}


@pytest.fixture
def url(pg_url: str) -> str:
    """A fresh schema per test (tests/conftest.py); a missing server skips, or fails in CI."""
    return pg_url


def mark(key: str, line: int, **counters: int) -> FileMark:
    return FileMark(key, Checkpoint(line, line * 100), counters)


def rows(url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()


def one(url: str, query: str) -> Any:
    return rows(url, query)[0][0]


def with_password(url: str) -> str:
    return url.replace("postgres@", f"postgres:{SECRET}@", 1)


def test_a_reference_event_lands_in_typed_columns(url: str) -> None:
    raw = orjson.dumps(EVENT)
    with PostgresSink(url) as sink:
        sink.write([raw])
        sink.flush(mark("job/0", 1, sent=1))
    [row] = rows(
        url,
        "SELECT id, timestamp, level, method, url, query, headers, context, message,"
        " auth_user_id, pid, hostname, remote_address, remote_port, processing_time_ms,"
        " cache_hit, document_count, last_updated, params, raw_data, created_at FROM logs",
    )
    req = EVENT["req"]
    assert row[:19] == (
        "3558",
        datetime(2024, 1, 1, tzinfo=UTC),
        "info",
        "GET",
        req["url"],
        req["query"],
        req["headers"],
        "ApiController",
        EVENT["message"],
        1102,
        46,
        "server-1",
        "::ffff:10.0.236.240",
        19250,
        100.5,
        True,
        2,
        datetime(2024, 1, 2, 1, 4, 5, 678000, tzinfo=UTC),
        {"id": "7"},
    )
    assert row[19] == orjson.loads(raw)
    assert row[20] is not None


def test_values_of_the_wrong_type_become_null_without_failing_the_batch(url: str) -> None:
    odd = {
        "level": 35,
        "timestamp": "not a date",
        "time": 1743532441581,  # only used when timestamp is absent
        "pid": "46",  # a numeric string is read as its number
        "hostname": 17,
        "req": {"id": "abc", "remotePort": 3_000_000_000, "query": "x=1", "headers": None},
        "message": {"nested": [1, 2]},
        "authUserId": "12x",
        "processingTimeMs": "fast",
        "cacheHit": "yes",
        "documentCount": 2.5,
        "lastUpdated": "2024-13-01T00:00:00Z",
    }
    pino = {"level": "warn", "time": 1743532441581, "msg": "from pino", "documentCount": 3.0}
    week = {"timestamp": "2024-W01-1T10:00:00", "lastUpdated": "2024-01-01T00:00:00+20:00"}
    shapeless = [{"req": "GET /", "message": "req is not an object"}, [1, 2], "text"]
    batch = [orjson.dumps(event) for event in (odd, pino, week, *shapeless)]
    with PostgresSink(url) as sink:
        sink.write(batch)
        sink.flush()
    read = rows(url, "SELECT message, method, raw_data FROM logs")
    assert [row for row in read if row[2] in shapeless] == [
        ("req is not an object", None, shapeless[0]),
        (None, None, shapeless[1]),
        (None, None, shapeless[2]),
    ]
    found = rows(
        url,
        "SELECT id, timestamp, level, pid, hostname, remote_port, query, headers, message,"
        " auth_user_id, processing_time_ms, cache_hit, document_count, last_updated, raw_data"
        " FROM logs WHERE raw_data ? 'level' OR raw_data ? 'timestamp'"
        " ORDER BY raw_data->>'level' NULLS LAST",
    )
    assert found[0] == (
        "abc", None, "35", 46, "17", None, "x=1", None, '{"nested":[1,2]}',
        None, None, None, None, None, odd,
    )  # fmt: skip
    assert found[1][1] == datetime(2025, 4, 1, 18, 34, 1, 581000, tzinfo=UTC)
    assert found[1][2] == "warn"
    assert found[1][8] == "from pino"
    assert found[1][12] == 3
    assert found[2][1] == datetime(2024, 1, 1, 10, tzinfo=UTC)  # a week date, read as UTC
    assert found[2][13] == datetime(2023, 12, 31, 4, tzinfo=UTC)  # +20:00, past PG's range


def test_nul_is_dropped_from_text_and_jsonb_but_escaped_backslashes_are_kept(url: str) -> None:
    raw = (
        b'{"message":"a\\u0000b","req":{"query":{"k":"x\\u0000y","\\u0000":1},'
        b'"url":"literal \\\\u0000 text"},"context":"\\\\\\u0000"}'
    )
    with PostgresSink(url) as sink:
        sink.write([raw])
        sink.flush()
    [row] = rows(url, "SELECT message, query, url, context, raw_data FROM logs")
    assert row[:4] == ("ab", {"k": "xy", "": 1}, "literal \\u0000 text", "\\")
    assert row[4] == {
        "message": "ab",
        "req": {"query": {"k": "xy", "": 1}, "url": "literal \\u0000 text"},
        "context": "\\",
    }


def numbered(n: int, message: str) -> bytes:
    """The reference event with its own ``req.id`` (the record id: one row per id)."""
    return orjson.dumps({**EVENT, "req": {**EVENT["req"], "id": n}, "message": message})


def test_ids_fall_back_to_the_message_id_then_a_hash_of_the_record(url: str) -> None:
    anonymous = orjson.dumps({"message": "no req.id"})
    other = orjson.dumps({"message": "no req.id either"})
    with PostgresSink(url) as sink:
        sink.write([anonymous, anonymous], keys=["msg-1", None])
        sink.write([orjson.dumps(EVENT)])
        sink.flush(mark("job/3", 3))
    with PostgresSink(url) as resumed:
        assert resumed.committed("job/3") == mark("job/3", 3)
        resumed.write([anonymous, other])  # the first is stored already: skipped
        resumed.flush(mark("job/3", 5))
        assert resumed.take_skipped() == {"duplicate record": 1}
    ids = sorted(row[0] for row in rows(url, "SELECT id FROM logs"))
    digest = hashlib.md5(anonymous).hexdigest()
    assert ids == sorted(
        ["3558", f"md5:{digest}", f"md5:{hashlib.md5(other).hexdigest()}", "msg-1"]
    )
    assert one(url, "SELECT events FROM tailrace_sink_checkpoints") == 4


def test_events_count_only_once_flushed(url: str) -> None:
    batch = [orjson.dumps(EVENT), b'{"message":"two"}']
    with PostgresSink(url) as sink:
        sink.write(batch)
        assert (sink.counters.events, sink.counters.bytes) == (0, 0)
        assert one(url, "SELECT count(*) FROM logs") == 0
        sink.flush()
        assert (sink.counters.events, sink.counters.bytes) == (2, sum(map(len, batch)))
        assert one(url, "SELECT count(*) FROM logs") == 2


def test_a_mark_with_nothing_buffered_is_still_stored(url: str) -> None:
    with PostgresSink(url) as sink:
        assert sink.committed("job/9") is None
        sink.flush(mark("job/9", 120, lines=120, filtered=120))
        assert sink.committed("job/9") == mark("job/9", 120, lines=120, filtered=120)
        sink.flush(mark("job/9", 150, lines=150, filtered=150))
    with PostgresSink(url) as again:
        assert again.committed("job/9") == mark("job/9", 150, lines=150, filtered=150)
    assert one(url, "SELECT count(*) FROM logs") == 0


def test_a_crash_keeps_the_flushed_batch_with_its_mark_and_nothing_after(url: str) -> None:
    first = [numbered(i, f"first {i}") for i in range(3)]
    sink = PostgresSink(url)
    sink.write(first)
    sink.flush(mark("job/1", 3, sent=3))
    sink.write([numbered(9, "never flushed")])
    sink._conn.close()  # the worker dies: the connection drops with no flush
    with pytest.raises(SinkError, match="1 events not delivered"):
        sink.close()
    assert sink.closed

    with PostgresSink(url) as resumed:
        assert resumed.committed("job/1") == mark("job/1", 3, sent=3)
    messages = [row[0] for row in rows(url, "SELECT message FROM logs ORDER BY message")]
    assert messages == ["first 0", "first 1", "first 2"]


class DiesBeforeTheMark(PostgresSink):
    """Loses its server between the COPY and the mark, inside the flush's transaction."""

    def _store_mark(self, cursor: Any, mark: FileMark, inserted: int, duplicates: int) -> None:
        pid = self._conn.info.backend_pid
        with psycopg.connect(self._conn.info.dsn, autocommit=True) as killer:
            killer.execute("SELECT pg_terminate_backend(%s)", (pid,))
        super()._store_mark(cursor, mark, inserted, duplicates)


def test_events_and_mark_commit_together_or_not_at_all(url: str) -> None:
    with PostgresSink(url) as sink:
        sink.write([orjson.dumps(EVENT)])
        sink.flush(mark("job/2", 1))
    dying = DiesBeforeTheMark(url)
    dying.write([numbered(i, "lost with its mark") for i in range(5)])
    with pytest.raises(SinkError, match="5 events not delivered"):
        dying.flush(mark("job/2", 6))
    assert dying.counters.events == 0
    with pytest.raises(SinkError):
        dying.close()

    with PostgresSink(url) as resumed:
        assert resumed.committed("job/2") == mark("job/2", 1)
    assert one(url, "SELECT count(*) FROM logs") == 1


def test_a_failed_copy_names_the_table_and_keeps_its_events(url: str) -> None:
    with PostgresSink(url):
        pass
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER TABLE logs ADD CHECK (level <> 'fatal')")
    sink = PostgresSink(url)
    try:
        sink.write([b'{"level":60}'])
        with pytest.raises(SinkError, match=r"\(table logs\): 1 events not delivered.*check"):
            sink.flush(mark("job/4", 1))
        assert sink.counters.events == 0
    finally:
        with pytest.raises(SinkError, match="1 events not delivered"):
            sink.close()  # still undelivered: closing says so instead of dropping them
    with PostgresSink(url) as fresh:
        assert fresh.committed("job/4") is None


def test_an_event_that_is_not_json_fails_the_flush(url: str) -> None:
    with PostgresSink(url) as sink:
        sink.write([orjson.dumps(EVENT), b"{not json"])
        with pytest.raises(SinkError, match="event 2 of the flush is not JSON"):
            sink.flush()
        sink._events.clear()  # so that closing does not try again
    assert one(url, "SELECT count(*) FROM logs") == 0


def test_bytes_that_are_not_utf8_are_refused_not_spliced_into_rows(url: str) -> None:
    # 0xff never occurs in UTF-8; unchecked, it could pass for a column separator.
    with PostgresSink(url, "raw_events", mapping="raw") as raw_sink:
        raw_sink.write([b'{"a":1}', b'{"a":"\xff\tx"}'])
        with pytest.raises(SinkError, match="event 2 of the flush is not UTF-8"):
            raw_sink.flush()
        raw_sink._events.clear()
    with PostgresSink(url) as log_sink:  # msgspec skips unread fields without checking them
        log_sink.write([b'{"skipped":"\xfd","message":"m"}'])
        with pytest.raises(SinkError, match="event 1 of the flush is not UTF-8"):
            log_sink.flush()
        log_sink._events.clear()


def test_the_raw_mapping_keeps_the_original_text(url: str) -> None:
    pretty = b'{\n\t"message": "tab\\there",\r\n "path": "C:\\\\x"\n}'
    with PostgresSink(url, "raw_events", mapping="raw") as sink:
        sink.write([pretty, orjson.dumps(EVENT)])
        sink.flush(mark("job/5", 2))
        assert sink.committed("job/5") == mark("job/5", 2)
    found = rows(url, "SELECT id, raw FROM raw_events ORDER BY id")
    assert [raw for _, raw in found] == [pretty.decode(), orjson.dumps(EVENT).decode()]
    assert one(url, "SELECT raw::jsonb->>'message' FROM raw_events ORDER BY id LIMIT 1") == (
        "tab\there"
    )


def test_a_schema_qualified_table_from_a_sink_url(url: str) -> None:
    schema = one(url, "SELECT current_schema()")
    spec = parse_sink_url(f"{url}&table={schema}.events")
    with PostgresSink.from_spec(spec) as sink:
        sink.write([orjson.dumps(EVENT)])
        sink.flush(mark("job/6", 1))
    tables = rows(
        url,
        "SELECT table_name FROM information_schema.tables"
        f" WHERE table_schema = '{schema}' ORDER BY 1",
    )
    assert tables == [("events",), ("tailrace_sink_checkpoints",)]
    assert one(url, "SELECT count(*) FROM events") == 1


def test_sinks_starting_at_once_create_the_tables_once(url: str) -> None:
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def open_and_write(n: int) -> None:
        try:
            start.wait()
            with PostgresSink(url, "shared") as sink:
                sink.write([numbered(n, f"worker {n}")])
                sink.flush(mark(f"job/{n}", 1))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_and_write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert one(url, "SELECT count(*) FROM shared") == 8
    assert one(url, "SELECT count(*) FROM tailrace_sink_checkpoints") == 8


def test_dead_letters_go_to_typed_columns(url: str) -> None:
    target = deadletter_spec(parse_sink_url(url))
    assert target.table == "logs_deadletter"
    records = [
        encode_record(BadLine("s3://b/a.ndjson", 12, 3456, "invalid JSON", b'{"a":\t1')),
        encode_record(BadLine("s3://b/a.ndjson", 13, 3470, "invalid UTF-8", b"\xff\xfe")),
        encode_record(BadLine("s3://b/a.ndjson", 14, 3480, "NUL", b"x\x00y")),
        encode_record(BadLine("s3://b/a.ndjson", 15, 3490, "too long"), max_data_bytes=4),
        encode_record(BadLine("s3://b/a.ndjson", 16, 3500, "cut", b"abcdefgh"), max_data_bytes=4),
    ]
    with PostgresDeadLetterSink.from_spec(target) as sink:
        assert not sink.exactly_once
        sink.write(records)
        sink.flush(mark("ignored", 1))
        assert sink.committed("ignored") is None
    found = rows(
        url,
        'SELECT file, line, "offset", reason, data, encoding, size, truncated'
        " FROM logs_deadletter ORDER BY line",
    )
    assert found == [
        ("s3://b/a.ndjson", 12, 3456, "invalid JSON", '{"a":\t1', "utf-8", 7, False),
        ("s3://b/a.ndjson", 13, 3470, "invalid UTF-8", "//4=", "base64", 2, False),
        ("s3://b/a.ndjson", 14, 3480, "NUL", "eAB5", "base64", 3, False),
        ("s3://b/a.ndjson", 15, 3490, "too long", None, None, None, None),
        ("s3://b/a.ndjson", 16, 3500, "cut", "abcd", "utf-8", 8, True),
    ]
    assert one(url, "SELECT count(*) FROM logs_deadletter WHERE recorded_at IS NULL") == 0
    assert one(url, "SELECT to_regclass('tailrace_sink_checkpoints')") is None


def assert_secret_hidden(exc: BaseException) -> None:
    shown = "".join(traceback.format_exception(exc)) + repr(exc)
    assert SECRET not in shown
    assert "***" in str(exc)


def test_errors_never_show_the_password(url: str) -> None:
    with pytest.raises(SinkError, match="cannot prepare") as missing_schema:
        PostgresSink(with_password(url), "no_such_schema.logs")
    assert_secret_hidden(missing_schema.value)

    refused = with_password(url).replace(":5432/", ":1/")
    with pytest.raises(SinkError, match="cannot connect") as unreachable:
        PostgresSink(refused)
    assert_secret_hidden(unreachable.value)

    keyword_dsn = f"host=127.0.0.1 port=1 dbname=test user=postgres password={SECRET}"
    with pytest.raises(SinkError, match="cannot connect") as keywords:
        PostgresDeadLetterSink(keyword_dsn)
    assert_secret_hidden(keywords.value)

    with PostgresSink(with_password(url)) as sink:
        assert SECRET not in sink.name
        assert SECRET not in repr(sink)


def test_the_session_is_named_and_commits_durably(url: str) -> None:
    # A role or server whose default is asynchronous commit: the sink raises it back to on.
    lax = url.replace("options=", "options=-csynchronous_commit%3Doff%20", 1)
    with psycopg.connect(lax) as plain:
        assert plain.execute("SHOW synchronous_commit").fetchone() == ("off",)
    with PostgresSink(lax) as sink:
        settings = sink._conn.execute(
            "SELECT current_setting('application_name'), current_setting('synchronous_commit')"
        ).fetchone()
        sink._conn.rollback()
    assert settings == ("tailrace-sink", "on")


def test_writing_after_close_fails(url: str) -> None:
    sink = PostgresSink(url)
    sink.close()
    sink.close()
    with pytest.raises(SinkError, match="write after close"):
        sink.write([b"{}"])
    with pytest.raises(ValueError, match="unknown mapping"):
        PostgresSink(url, mapping="xml")  # type: ignore[arg-type]


def test_a_named_file_streams_into_one_transaction_committed_with_its_mark(url: str) -> None:
    events = [orjson.dumps({**EVENT, "req": {"id": n}}) for n in range(3 * STREAM_ROWS + 5)]
    with PostgresSink(url) as sink:
        assert sink.committed("job/7") is None  # a worker names its file first
        sink.write(events[: 2 * STREAM_ROWS])
        assert one(url, "SELECT count(*) FROM logs") == 0  # sent, not committed
        sink.write(events[2 * STREAM_ROWS :])
        sink.flush(mark("job/7", len(events)))
        assert sink.counters.events == len(events)
    assert one(url, "SELECT count(DISTINCT id) FROM logs") == len(events)
    assert one(url, "SELECT events FROM tailrace_sink_checkpoints") == len(events)


def test_a_worker_dying_mid_stream_commits_nothing_past_the_mark(url: str) -> None:
    first = [orjson.dumps({**EVENT, "req": {"id": n}}) for n in range(10)]
    with PostgresSink(url) as sink:
        sink.committed("job/8")
        sink.write(first)
        sink.flush(mark("job/8", 10))
    dying = PostgresSink(url)
    dying.committed("job/8")
    dying.write([orjson.dumps({**EVENT, "req": {"id": 100 + n}}) for n in range(STREAM_ROWS)])
    assert dying._stream_copy is not None  # streaming: the rows are at the server
    dying.close()  # a file that stops without its final flush: rolled back, not committed
    with PostgresSink(url) as resumed:
        assert resumed.committed("job/8") == mark("job/8", 10)
    assert one(url, "SELECT count(*) FROM logs") == 10


def test_a_new_file_drops_what_an_unfinished_one_left(url: str) -> None:
    with PostgresSink(url) as sink:
        sink.committed("job/a")
        sink.write([orjson.dumps({**EVENT, "req": {"id": n}}) for n in range(STREAM_ROWS + 3)])
        sink.committed("job/b")  # job/a failed mid-file; it will resume from its own mark
        sink.write([orjson.dumps({**EVENT, "req": {"id": "b1"}})])
        sink.flush(mark("job/b", 1))
        assert sink.counters.events == 1
    assert [r[0] for r in rows(url, "SELECT id FROM logs")] == ["b1"]
