"""Coming from the Kafka workers: their ``outbox_events`` table relayed as it is, with their
OUTBOX_* settings, on PostgreSQL and a Tansu broker."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from click.testing import CliRunner

from tailrace.cli.outbox import outbox
from tests.kafka_broker import Record, TansuBroker
from tests.services import postgres_schema
from tests.waiting import wait_until

pytestmark = pytest.mark.kafka
SRC = Path(__file__).resolve().parents[3] / "src"

# Their migration's table, exactly (003_production_ready.sql of the Kafka workers' project).
REFERENCE_SCHEMA = """
CREATE TABLE outbox_events (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    aggregate_type VARCHAR(50) NOT NULL,
    aggregate_id UUID NOT NULL,
    event_type VARCHAR(100) NOT NULL,
    payload JSONB NOT NULL,
    published BOOLEAN DEFAULT FALSE,
    published_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL DEFAULT NOW(),
    version INTEGER DEFAULT 1,
    error_message TEXT,
    CONSTRAINT idx_outbox_dedup UNIQUE (aggregate_id, event_type)
);
CREATE INDEX idx_outbox_unpublished ON outbox_events(published, created_at)
    WHERE published = FALSE;
CREATE INDEX idx_outbox_aggregate ON outbox_events(aggregate_type, aggregate_id, event_type);
"""


def columns(suffix: str) -> list[str]:
    """The poller's own choices as a column mapping: its topic per event type, its partition
    key (the conversation for messages) and its message envelope."""
    topic = (
        f"CASE WHEN event_type LIKE 'message.%' THEN 'message_events_{suffix}' "
        f"WHEN event_type LIKE 'file.%' THEN 'file_events_{suffix}' "
        f"ELSE 'default_events_{suffix}' END"
    )
    key = (
        "CASE WHEN aggregate_type = 'message' AND payload ? 'conversation_id' "
        "THEN 'conversation:' || (payload->>'conversation_id') ELSE aggregate_id::text END"
    )
    value = (
        "jsonb_build_object('event_id', id, 'aggregate_type', aggregate_type, "
        "'aggregate_id', aggregate_id, 'event_type', event_type, 'payload', payload, "
        "'created_at', created_at, 'published_at', now())"
    )
    return ["--column", f"topic={topic}", "--column", f"key={key}", "--column", f"value={value}"]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    with TansuBroker(tmp_path_factory.mktemp("tansu")) as started:
        yield started


@pytest.fixture
def pg_url() -> Iterator[str]:
    with postgres_schema() as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(REFERENCE_SCHEMA)
        yield url


def write(conn: psycopg.Connection[Any], conversation: int, n: int, size: int = 0) -> str:
    """One message event as their API writes it, in a transaction of its own."""
    payload = {"message_id": str(uuid.uuid4()), "conversation_id": conversation, "n": n}
    if size:
        payload["text"] = "x" * size
    row = conn.execute(
        "INSERT INTO outbox_events (aggregate_type, aggregate_id, event_type, payload) "
        "VALUES ('message', %s, 'message.created', %s) RETURNING id",
        (payload["message_id"], orjson.dumps(payload).decode()),
    ).fetchone()
    assert row is not None
    return str(row[0])


def relay(pg_url: str, broker: TansuBroker, suffix: str, env: dict[str, str]) -> dict[str, Any]:
    arguments = ["relay", "--database-url", pg_url, "--bootstrap-servers", broker.bootstrap]
    arguments += ["--table", "outbox_events", *columns(suffix), "--retry-base", "0.01"]
    arguments += ["--producer-config", "message.max.bytes=4000", "--until-idle", "--json"]
    result = CliRunner().invoke(outbox, arguments, env=env)
    assert result.exit_code == 0, result.output
    return dict(orjson.loads(result.output))


def by_key(records: list[Record]) -> dict[bytes, list[int]]:
    found: dict[bytes, list[int]] = defaultdict(list)
    for record in records:
        found[record.key or b""].append(orjson.loads(record.value or b"")["payload"]["n"])
    return dict(found)


def test_their_outbox_table_is_relayed_in_order_per_key_with_their_settings(
    broker: TansuBroker, pg_url: str
) -> None:
    suffix = uuid.uuid4().hex[:6]
    topic = f"message_events_{suffix}"
    broker.create_topic(topic, partitions=3)
    env = {"OUTBOX_BATCH_SIZE": "7", "OUTBOX_MAX_RETRIES": "2", "OUTBOX_POLL_INTERVAL_MS": "20"}
    with psycopg.connect(pg_url, autocommit=True) as conn:
        ids = {}
        for n in range(40):
            conversation = n % 4
            # one event too large for the broker: it fails, and holds its conversation
            ids[n] = write(conn, conversation, n, size=6000 if n == 9 else 0)
        stats = relay(pg_url, broker, suffix, env)
        # all but the poison and the 7 later events of its conversation; its two attempts
        assert stats["published"] == 32 and stats["pending"] == 8
        assert stats["batches"] >= math.ceil(32 / 7) and stats["failed"] == 2
        poison = conn.execute(
            "SELECT published, version, error_message FROM outbox_events WHERE id = %s",
            (ids[9],),
        ).fetchone()
        assert poison is not None and poison[0] is False and poison[1] == 3
        assert "too large" in (poison[2] or "").lower()
        left = conn.execute(
            "SELECT payload->>'n' FROM outbox_events WHERE published IS NOT TRUE "
            "ORDER BY created_at"
        ).fetchall()
        assert [int(n) for (n,) in left] == [n for n in range(40) if n % 4 == 1 and n >= 9]
        stamped = conn.execute(
            "SELECT count(*) FROM outbox_events WHERE published AND published_at IS NOT NULL"
        ).fetchone()
        assert stamped == (32,)

        records = broker.consume_all(topic, expected=32)
        assert by_key(records) == {
            f"conversation:{c}".encode(): [
                n for n in range(40) if n % 4 == c and not (c == 1 and n >= 9)
            ]
            for c in range(4)
        }
        envelope = orjson.loads(records[0].value or b"")
        assert set(envelope) >= {"event_id", "aggregate_id", "event_type", "payload"}
        assert records[0].header("message_id") == envelope["event_id"].encode()
        assert records[0].header("tailrace_outbox_id") == envelope["event_id"].encode()

        # Fixed and requeued the way their operators would: its conversation follows, in order.
        conn.execute(
            "UPDATE outbox_events SET payload = payload - 'text', version = 1 WHERE id = %s",
            (ids[9],),
        )
        stats = relay(pg_url, broker, suffix, env)
        assert stats["published"] == 8 and stats["pending"] == 0
    records = broker.consume_all(topic, expected=40)
    assert by_key(records) == {
        f"conversation:{c}".encode(): [n for n in range(40) if n % 4 == c] for c in range(4)
    }


def test_their_outbox_settings_drive_the_built_in_relay_too(
    broker: TansuBroker, pg_url: str
) -> None:
    from tailrace.engine.store.postgres.store import PostgresStore
    from tailrace.streams import outbox as events

    topic = f"orders_{uuid.uuid4().hex[:6]}"
    broker.create_topic(topic)
    store = PostgresStore(pg_url)
    store.migrate()
    store.close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for n in range(10):
            events.add(conn, topic, f"order-{n % 2}", {"n": n})
    env = {"OUTBOX_BATCH_SIZE": "3", "OUTBOX_MAX_RETRIES": "2", "OUTBOX_POLL_INTERVAL_MS": "50"}
    arguments = ["relay", "--database-url", pg_url, "--bootstrap-servers", broker.bootstrap]
    result = CliRunner().invoke(outbox, [*arguments, "--until-idle", "--json"], env=env)
    assert result.exit_code == 0, result.output
    stats = orjson.loads(result.output)
    # at most 3 events a batch (the default, 5000, would take them all at once)
    assert stats["published"] == 10 and stats["batches"] >= 4
    assert len(broker.consume_all(topic, expected=10)) == 10


def test_a_table_relay_killed_midway_loses_nothing_and_keeps_key_order(
    broker: TansuBroker, pg_url: str, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:6]
    topic = f"message_events_{suffix}"
    broker.create_topic(topic, partitions=3)
    total = 1500
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for n in range(total):
            write(conn, n % 5, n)
    env = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")},
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
        "DATABASE_URL": pg_url,
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "OUTBOX_BATCH_SIZE": "20",
    }
    command = [sys.executable, "-m", "tailrace", "outbox", "relay", "--table", "outbox_events"]
    command += columns(suffix)

    def published() -> int:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM outbox_events WHERE published").fetchone()
        return int(row[0]) if row else 0

    with (tmp_path / "relay.log").open("wb") as log:
        first = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_until(lambda: published() > 0, 60, "the first batches")
        first.kill()  # SIGKILL: between a send and its mark, most likely
        first.wait(10)
        at_kill = published()
        assert at_kill < total
        second = subprocess.Popen(
            [*command, "--until-idle"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        assert second.wait(120) == 0, (tmp_path / "relay.log").read_text()
    assert published() == total
    records = broker.consume_all(topic, expected=total, quiet=2.0)
    firsts: dict[bytes, list[int]] = defaultdict(list)
    seen: set[bytes] = set()
    for record in records:  # copies of a batch resent after the kill are dropped by id
        ident = record.header("message_id") or b""
        if ident not in seen:
            seen.add(ident)
            firsts[record.key or b""].append(orjson.loads(record.value or b"")["payload"]["n"])
    assert len(seen) == total
    assert dict(firsts) == {
        f"conversation:{c}".encode(): list(range(c, total, 5)) for c in range(5)
    }


def test_a_table_relay_serves_its_metrics_and_probes(
    broker: TansuBroker, pg_url: str, tmp_path: Path
) -> None:
    """`--metrics-port` with `--table`: the probes answer, and the pending events are those
    of their table (what their `outbox_pending_events` counted)."""
    import urllib.error
    import urllib.request

    from tests.services import free_port

    suffix = uuid.uuid4().hex[:6]
    broker.create_topic(f"message_events_{suffix}")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for n in range(5):
            write(conn, n % 2, n)
    env = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")},
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
        "DATABASE_URL": pg_url,
    }
    base = [sys.executable, "-m", "tailrace", "outbox", "relay", "--table", "outbox_events"]
    base += columns(suffix)

    def get(port: int, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError as exc:
            return 0, str(exc)

    def gauge(text: str, line: str) -> float | None:
        for row in text.splitlines():
            if row.startswith(line + " "):
                return float(row.split()[-1])
        return None

    log_path = tmp_path / "relay.log"
    pending_line = 'tailrace_outbox_events{status="pending"}'
    # no broker there: every event stays pending, and the relay says it is not ready
    port = free_port()
    command = [*base, "--bootstrap-servers", f"127.0.0.1:{free_port()}"]
    with log_path.open("wb") as log:
        down = subprocess.Popen(
            [*command, "--metrics-port", str(port)], env=env, stdout=log, stderr=log
        )
    try:
        wait_until(lambda: get(port, "/readyz")[0] == 503, 30, "the relay's readiness")
        assert "kafka: no broker answers" in get(port, "/readyz")[1]
        assert get(port, "/healthz")[0] == 200
        assert gauge(get(port, "/metrics")[1], pending_line) == 5
    finally:
        down.kill()
        down.wait(10)

    port = free_port()
    command = [*base, "--bootstrap-servers", broker.bootstrap, "--metrics-port", str(port)]
    with log_path.open("ab") as log:
        up = subprocess.Popen(command, env=env, stdout=log, stderr=log)
    try:
        wait_until(
            lambda: gauge(get(port, "/metrics")[1], "tailrace_outbox_published_events_total") == 5,
            60,
            "5 events published",
        )
        # the pending count is cached for a few seconds between scrapes
        wait_until(lambda: gauge(get(port, "/metrics")[1], pending_line) == 0, 30, "none pending")
    finally:
        up.terminate()
        up.wait(20)


def test_a_table_relay_outlives_a_broker_outage_and_spends_no_retries_on_it(
    tmp_path: Path, pg_url: str
) -> None:
    """Their poller's table, the broker stopped for longer than a message's timeout: no
    event's `version` moves (an outage is nobody's fault), and all go once it is back."""
    suffix = uuid.uuid4().hex[:6]
    topic = f"message_events_{suffix}"
    with TansuBroker(tmp_path) as broker:
        broker.create_topic(topic, partitions=2)
        env = {
            **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")},
            "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
            "DATABASE_URL": pg_url,
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "OUTBOX_POLL_INTERVAL_MS": "500",
            "OUTBOX_MAX_RETRIES": "3",
            "OUTBOX_BATCH_SIZE": "100",
        }
        command = [sys.executable, "-m", "tailrace", "outbox", "relay", "--table", "outbox_events"]
        command += [*columns(suffix), "--producer-config", "message.timeout.ms=2000"]
        log_path = tmp_path / "relay.log"

        def published() -> int:
            with psycopg.connect(pg_url, autocommit=True) as conn:
                row = conn.execute("SELECT count(*) FROM outbox_events WHERE published").fetchone()
            return int(row[0]) if row else 0

        with psycopg.connect(pg_url, autocommit=True) as conn:
            for n in range(10):
                write(conn, n % 2, n)
        with log_path.open("wb") as log:
            running = subprocess.Popen(command, env=env, stdout=log, stderr=log)
        try:
            wait_until(lambda: published() == 10, 60, "the first events")
            broker.stop()
            with psycopg.connect(pg_url, autocommit=True) as conn:
                for n in range(10, 20):
                    write(conn, n % 2, n)
            # rounds failed for the outage, more than OUTBOX_MAX_RETRIES of them
            wait_until(
                lambda: log_path.read_text().count("outbox events failed") > 3,
                90,
                "rounds failed by the outage",
            )
            broker.start()  # in memory: an empty broker, the topic made again
            broker.create_topic(topic, partitions=2)
            wait_until(lambda: published() == 20, 90, "every event published after the outage")
            with psycopg.connect(pg_url, autocommit=True) as conn:
                row = conn.execute("SELECT max(version) FROM outbox_events").fetchone()
            assert row is not None and row[0] == 1
        finally:
            running.terminate()
            running.wait(20)
        records = broker.consume_all(topic, expected=10, quiet=2.0)
    assert by_key(records) == {
        f"conversation:{c}".encode(): list(range(10 + c, 20, 2)) for c in range(2)
    }
