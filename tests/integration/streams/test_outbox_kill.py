"""Two relays in subprocesses, one killed (SIGKILL) mid-batch: each committed event is on
the topic exactly once, in order per key, and a rolled-back one never is."""

from __future__ import annotations

import random
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tailrace.streams import outbox
from tailrace.streams.outbox import OutboxEvent, OutboxStatus
from tests.integration.streams.outbox_support import (
    migrated_schema,
    outbox_ids,
    per_key,
    start_relay,
    with_app_name,
)
from tests.kafka_broker import TansuBroker
from tests.services import stop_process
from tests.waiting import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

EVENTS = 30_000
KEYS = 600
BATCH = 500
OPTIONS = ("--batch-size", str(BATCH), "--reconcile-every", "0.2", "--orphan-grace", "0.5")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[TansuBroker]:
    with TansuBroker(tmp_path) as started:
        yield started


def _in_flight_of(conn: psycopg.Connection[tuple[int]], app: str) -> int:
    row = conn.execute(
        "SELECT count(*) FROM tailrace_outbox_batches b JOIN pg_stat_activity a"
        " ON a.pid = b.owner_pid AND a.backend_start = b.owner_started"
        " WHERE a.application_name = %s",
        (app,),
    ).fetchone()
    return row[0] if row else 0


def _unsettled(conn: psycopg.Connection[tuple[int]]) -> int:
    counts = outbox.counts(conn)
    return counts[OutboxStatus.PENDING] + counts[OutboxStatus.PUBLISHING]


def test_relay_killed_mid_batch_loses_and_repeats_nothing(
    broker: TansuBroker, tmp_path: Path
) -> None:
    topic = f"outbox-{uuid.uuid4().hex[:10]}"
    broker.create_topic(topic, partitions=3)
    with migrated_schema() as url, psycopg.connect(url, autocommit=True) as conn:
        with pytest.raises(RuntimeError), conn.transaction():
            outbox.add(conn, topic, "key-0", b"rolled back")
            raise RuntimeError("abort")
        with conn.transaction():
            outbox.add_many(
                conn, (OutboxEvent(topic, f"key-{n % KEYS}", b"%d" % n) for n in range(EVENTS))
            )
        log_a, log_b = tmp_path / "relay-a.log", tmp_path / "relay-b.log"
        relay_a = start_relay(with_app_name(url, "relay-a"), broker.bootstrap, log_a, *OPTIONS)
        relay_b = start_relay(with_app_name(url, "relay-b"), broker.bootstrap, log_b, *OPTIONS)
        try:
            wait_until(
                lambda: (
                    outbox.counts(conn)[OutboxStatus.PUBLISHED] >= 2_000
                    and _in_flight_of(conn, "relay-a") > 0
                ),
                timeout=60,
                what="both relays publishing",
            )
            # With the broker frozen no batch can finish, so relay A is surely mid-batch
            # (sent, unacknowledged) when killed; its requests wait in the broker's socket.
            broker.freeze()
            try:
                wait_until(lambda: _in_flight_of(conn, "relay-a") > 0, what="A mid-batch")
                relay_a.send_signal(signal.SIGKILL)
                relay_a.wait(timeout=10)
            finally:
                broker.thaw()
            wait_until(lambda: _unsettled(conn) == 0, timeout=60, what="every event settled")
            dead_batches = conn.execute("SELECT count(*) FROM tailrace_outbox_batches").fetchone()
        finally:
            stop_process(relay_a, 10)
            stop_process(relay_b, 10)
        assert outbox.counts(conn)[OutboxStatus.PUBLISHED] == EVENTS
    assert dead_batches == (0,)
    assert "reconciled batch" in log_b.read_text(), "relay A died outside a batch"

    records = broker.consume_all(topic, quiet=1.0, timeout=60)  # reads on past any duplicate
    ids = outbox_ids(records)
    assert len(ids) == len(set(ids)) == EVENTS
    for key, values in per_key(records).items():
        numbers = [int(v or b"") for v in values]
        assert numbers == sorted(numbers), f"{key!r} out of order"


@pytest.mark.slow
def test_relay_killed_at_random_points_again_and_again_publishes_each_event_once(
    broker: TansuBroker, tmp_path: Path
) -> None:
    rng = random.Random()
    events, kills = 12_000, 3
    topic = f"outbox-{uuid.uuid4().hex[:10]}"
    broker.create_topic(topic, partitions=3)
    log = tmp_path / "relay.log"
    with migrated_schema() as url, psycopg.connect(url, autocommit=True) as conn:
        with conn.transaction():
            outbox.add_many(
                conn, (OutboxEvent(topic, f"key-{n % KEYS}", b"%d" % n) for n in range(events))
            )

        def published() -> int:
            return outbox.counts(conn)[OutboxStatus.PUBLISHED]

        for round_ in range(kills):
            # At a random point: a random number of events further, then a random moment.
            # At least one batch further (a relay killed before it publishes anything puts
            # its first batch back with one more attempt: killed thrice, its events would
            # die), and short of the end, kept for the later rounds (a fast relay gets there
            # within a moment).
            start = published()
            room = events - start - 1_500 * (kills - round_)
            target = start + rng.randrange(BATCH, max(BATCH + 1, min(2_500, room)))
            relay = start_relay(url, broker.bootstrap, log, *OPTIONS)
            try:
                wait_until(lambda t=target: published() >= t, 60, f"{target} published")
                try:
                    wait_until(lambda: False, rng.uniform(0, 0.05), "a random delay")
                except AssertionError:
                    pass
            finally:
                relay.send_signal(signal.SIGKILL)
                relay.wait(timeout=10)
        assert _unsettled(conn) > 0, "all published before the last kill: the test proves less"
        last = start_relay(url, broker.bootstrap, log, *OPTIONS)
        try:
            wait_until(lambda: _unsettled(conn) == 0, timeout=90, what="every event settled")
        finally:
            stop_process(last, 10)
        assert published() == events

    records = broker.consume_all(topic, quiet=1.0, timeout=60)
    ids = outbox_ids(records)
    assert len(ids) == len(set(ids)) == events  # once each: killed batches were reconciled
    for key, values in per_key(records).items():
        numbers = [int(v or b"") for v in values]
        assert numbers == sorted(numbers), f"{key!r} out of order"
