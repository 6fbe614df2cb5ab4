"""The outbox relay through a broker outage longer than its attempts: no event dies of it,
later events of a key wait behind the first, and once the broker is back every event is
published once, in order per key. The outage is visible meanwhile (stats, `held`)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tailrace.engine.retry import RetryPolicy
from tailrace.streams import outbox
from tailrace.streams.outbox import OutboxStatus
from tailrace.streams.outbox.relay import Relay, RelaySettings
from tests.integration.streams.outbox_support import migrated_schema, outbox_ids, per_key
from tests.kafka_broker import TansuBroker
from tests.waiting import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.kafka, pytest.mark.slow]

MAX_ATTEMPTS = 2
SETTINGS = RelaySettings(
    batch_size=100,
    max_attempts=MAX_ATTEMPTS,
    retry=RetryPolicy(base_s=0.05, max_s=0.2, jitter=0),
    idle_wait_s=0.05,
    reconcile_every_s=0.2,
    orphan_grace_s=0.2,
    broker_backoff_max_s=0.3,
    producer={"message.timeout.ms": "300"},
)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[TansuBroker]:
    with TansuBroker(tmp_path) as started:
        yield started


def test_an_outage_longer_than_the_attempts_kills_nothing_and_keeps_key_order(
    broker: TansuBroker,
) -> None:
    topic = f"outage-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic, partitions=2)
    with migrated_schema() as url, psycopg.connect(url, autocommit=True) as conn:
        stop = threading.Event()
        relay = Relay(url, broker.bootstrap, SETTINGS)
        thread = threading.Thread(target=relay.run, args=(stop,))
        ids: list[int] = []
        try:
            broker.stop()
            thread.start()
            ids += [outbox.add(conn, topic, f"k{i % 5}", b"%d" % i) for i in range(20)]

            def attempts() -> int:
                row = conn.execute("SELECT max(attempts) FROM tailrace_outbox").fetchone()
                return int(row[0] or 0) if row else 0

            # Every head has failed more often than max_attempts: the outage outlasted them.
            wait_until(lambda: attempts() > 2 * MAX_ATTEMPTS, 60, "attempts past the maximum")
            assert relay.stats.in_outage and relay.stats.transient_failures > 0
            assert outbox.counts(conn)[OutboxStatus.DEAD] == 0
            assert outbox.held(conn).held_events > 0  # later events wait behind their heads
            ids += [outbox.add(conn, topic, f"k{i % 5}", b"%d" % (20 + i)) for i in range(20)]

            broker.start()  # in memory: an empty broker, the topic made again
            broker.create_topic(topic, partitions=2)
            wait_until(
                lambda: outbox.counts(conn)[OutboxStatus.PUBLISHED] == len(ids),
                90,
                "every event published",
            )
            assert not relay.stats.in_outage
        finally:
            stop.set()
            if thread.is_alive():
                thread.join(30)
            relay.close()
    records = broker.consume_all(topic, expected=len(ids))
    assert sorted(outbox_ids(records)) == ids  # each once
    for key, values in per_key(records).items():
        numbers = [int(v or b"") for v in values]
        assert numbers == sorted(numbers), f"{key!r} out of order: {numbers}"
