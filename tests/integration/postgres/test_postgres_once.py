"""The PostgreSQL sink writes each record once: a stable record id with a unique index,
checkpoints keyed by the target table, and a claim that fences a worker that lost its file."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import psycopg
import pytest

from tailrace.pipeline.decoders.framing import Checkpoint
from tailrace.pipeline.sinks.base import DUPLICATE_RECORD, FileMark, SinkError
from tailrace.pipeline.sinks.postgres.sink import _LOG, STREAM_ROWS, PostgresSink

pytestmark = pytest.mark.postgres


@pytest.fixture
def url(pg_url: str) -> str:
    """A fresh schema per test (tests/conftest.py)."""
    return pg_url


# The log table as earlier versions created it: no unique index on the id.
EARLIER_LOG_COLUMNS = _LOG.columns.replace("id text PRIMARY KEY", "id text")


def event(n: int, *, with_id: bool = True, note: str = "") -> bytes:
    record: dict[str, Any] = {"level": 30, "message": f"request {n}{note}", "n": n}
    if with_id:
        record["req"] = {"id": n, "method": "GET"}
    return orjson.dumps(record)


def mark(key: str, line: int, sent: int, **extra: int) -> FileMark:
    return FileMark(key, Checkpoint(line, line * 10), {"lines": line, "sent": sent, **extra})


def one(url: str, query: str) -> Any:
    with psycopg.connect(url) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


def load(url: str, table: str, key: str, events: list[bytes]) -> tuple[FileMark | None, int]:
    """One worker's file: resume, write everything, final mark; the mark read back after."""
    with PostgresSink(url, table) as sink:
        sink.committed(key)
        sink.write(events)
        sink.flush(mark(key, len(events), len(events)))
        dropped = sink.take_skipped()
    with PostgresSink(url, table) as sink:
        return sink.committed(key), sum(dropped.values())


@pytest.mark.parametrize("size", [10, STREAM_ROWS * 3 + 5])  # buffered, and streamed
def test_a_file_loaded_again_under_another_key_inserts_nothing_twice(url: str, size: int) -> None:
    events = [event(n) for n in range(size)]
    load(url, "logs", "file@v1", events)
    again, skipped = load(url, "logs", "file@v2", events)  # the same records, a new version
    assert one(url, "SELECT count(*) FROM logs") == size
    assert skipped == size
    assert again is not None
    assert again.counters["sent"] == 0
    assert again.counters["skipped"] == size
    assert again.counters["skip:" + DUPLICATE_RECORD] == size


def test_a_fixed_file_adds_only_its_new_records(url: str) -> None:
    load(url, "logs", "f@1", [event(n) for n in range(0, 6)])
    after, skipped = load(url, "logs", "f@2", [event(n) for n in range(0, 10)])
    assert one(url, "SELECT count(*) FROM logs") == 10
    assert one(url, "SELECT count(DISTINCT id) FROM logs") == 10
    assert skipped == 6 and after is not None and after.counters["sent"] == 4


def test_records_without_an_id_are_told_apart_by_their_content(url: str) -> None:
    first = [event(n, with_id=False) for n in range(5)]
    load(url, "logs", "a", first)
    load(url, "logs", "b", [*first, event(9, with_id=False)])
    assert one(url, "SELECT count(*) FROM logs") == 6
    digest = hashlib.md5(first[0]).hexdigest()
    assert one(url, f"SELECT count(*) FROM logs WHERE id = 'md5:{digest}'") == 1


def test_the_same_record_twice_in_one_flush_is_stored_once(url: str) -> None:
    with PostgresSink(url, "logs") as sink:
        sink.committed("k")
        sink.write([event(1), event(2), event(1)])
        sink.flush(mark("k", 3, 3))
        assert sink.take_skipped() == {DUPLICATE_RECORD: 1}
        assert sink.counters.events == 2
    assert one(url, "SELECT count(*) FROM logs") == 2


def test_the_raw_mapping_stores_a_record_once(url: str) -> None:
    for key in ("a", "b"):
        with PostgresSink(url, "raw_logs", mapping="raw") as sink:
            sink.committed(key)
            sink.write([event(n) for n in range(4)])
            sink.flush(mark(key, 4, 4))
    assert one(url, "SELECT count(*) FROM raw_logs") == 4


def test_a_table_of_an_earlier_version_gets_its_unique_index(url: str) -> None:
    with psycopg.connect(url) as conn:  # the shape earlier versions created: no index
        conn.execute(f"CREATE TABLE logs ({EARLIER_LOG_COLUMNS})")
        conn.execute("INSERT INTO logs (id) VALUES ('1'), ('2')")
    load(url, "logs", "k", [event(n) for n in range(4)])
    assert one(url, "SELECT count(*) FROM logs") == 4


def test_a_table_of_an_earlier_version_holding_duplicates_is_refused_with_the_fix(
    url: str,
) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(f"CREATE TABLE logs ({EARLIER_LOG_COLUMNS})")
        conn.execute("INSERT INTO logs (id) VALUES ('1'), ('1')")
    with pytest.raises(SinkError) as failure:
        PostgresSink(url, "logs")
    assert "duplicate" in str(failure.value)
    assert "CREATE UNIQUE INDEX" in str(failure.value)
    assert one(url, "SELECT count(*) FROM logs") == 2  # nothing changed


def test_a_raw_table_of_an_earlier_version_is_refused_with_the_fix(url: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE raw_logs (id bigserial PRIMARY KEY, raw text)")
    with pytest.raises(SinkError) as failure:
        PostgresSink(url, "raw_logs", mapping="raw")
    assert "ADD COLUMN record_id" in str(failure.value)


def test_checkpoints_are_kept_per_target_table(url: str) -> None:
    events = [event(n) for n in range(50)]
    load(url, "table_a", "job/0", events)
    resumed, _ = load(url, "table_b", "job/0", events)
    assert one(url, "SELECT count(*) FROM table_a") == 50
    assert one(url, "SELECT count(*) FROM table_b") == 50
    with PostgresSink(url, "table_b") as sink:
        assert sink.committed("job/0") is not None
    with PostgresSink(url, "table_c") as sink:
        assert sink.committed("job/0") is None  # nothing was written there
    assert resumed is not None and resumed.counters["sent"] == 50


@pytest.mark.parametrize("size", [10, STREAM_ROWS * 2 + 1])
def test_a_worker_that_lost_its_claim_writes_nothing(url: str, size: int) -> None:
    with PostgresSink(url, "logs") as old, PostgresSink(url, "logs") as new:
        old.committed("f")
        old.write([event(n) for n in range(size)])
        assert new.committed("f") is None  # the file restarted elsewhere: the claim moves
        with pytest.raises(SinkError, match="lost the claim"):
            old.flush(mark("f", size, size))
        new.write([event(n) for n in range(size)])
        new.flush(mark("f", size, size))
        assert new.take_skipped() == {}
    assert one(url, "SELECT count(*) FROM logs") == size
    with PostgresSink(url, "logs") as sink:
        back = sink.committed("f")
    assert back is not None and back.counters["sent"] == size


def test_past_what_it_keeps_a_conflict_fails_the_flush_and_the_file_resumes_checking(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tailrace.pipeline.sinks.postgres import sink as postgres_sink

    monkeypatch.setattr(postgres_sink, "RETAIN_BYTES", 1_000)  # keeps almost nothing to replay
    stored = [event(n) for n in range(STREAM_ROWS * 2)]
    load(url, "logs", "old", stored)
    with PostgresSink(url, "logs") as sink:
        assert sink.committed("new") is None
        sink.write([event(n) for n in range(-5, 0)])
        sink.flush(mark("new", 5, 5))  # new records: straight in
        sink.write(stored)
        with pytest.raises(SinkError, match="resumes from its last mark, checking each record"):
            sink.flush(mark("new", 5 + len(stored), 5 + len(stored)))
    with PostgresSink(url, "logs") as resumed:
        back = resumed.committed("new")
        assert back == mark("new", 5, 5)
        resumed.flush(back)  # a mark alone, in the checking mode
        resumed.write([*stored, event(10**6)])
        resumed.flush(mark("new", 6 + len(stored), 6 + len(stored)))
        assert resumed.take_skipped() == {DUPLICATE_RECORD: len(stored)}
    assert one(url, "SELECT count(*) FROM logs") == len(stored) + 6


def test_a_checkpoint_table_of_an_earlier_version_gets_the_claim_columns(url: str) -> None:
    with psycopg.connect(url) as conn:  # as earlier versions created it, with an old mark
        conn.execute(
            "CREATE TABLE tailrace_sink_checkpoints (key text PRIMARY KEY, line bigint NOT NULL,"
            " \"offset\" bigint NOT NULL, counters jsonb NOT NULL DEFAULT '{}',"
            " events bigint NOT NULL DEFAULT 0, updated_at timestamptz NOT NULL DEFAULT now())"
        )
        conn.execute(
            "INSERT INTO tailrace_sink_checkpoints (key, line, \"offset\") VALUES ('f', 9, 9)"
        )
    # the old mark names no table: the file starts again, and the records it had stored are
    # found, not stored twice
    load(url, "logs", "f", [event(n) for n in range(5)])
    again, skipped = load(url, "logs", "f", [event(n) for n in range(5)])
    assert again is not None and again.counters["sent"] == 0 and skipped == 5
    assert one(url, "SELECT count(*) FROM logs") == 5
