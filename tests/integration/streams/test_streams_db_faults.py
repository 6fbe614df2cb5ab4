"""The stream workers through faults of their PostgreSQL (a cluster the test owns): a fast
restart, then the server stopped for a few seconds and started again, while the worker runs.

- `tailrace outbox relay`: the process does not exit; every event is published, once, in
  order per key.
- `tailrace consume --dedup-store postgres`: the process does not exit; every message is
  handled, and handler calls repeat at most 2 x --commit-every (docs/streams.md).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import Producer

import tailrace
from tailrace.db import migrate
from tailrace.streams import outbox
from tailrace.streams.outbox import OutboxEvent, OutboxStatus
from tailrace.streams.producer import BreakerProducer, BreakerSettings
from tailrace.streams.spool import open_spool
from tests.integration.streams.outbox_support import outbox_ids, per_key, start_relay
from tests.kafka_broker import TansuBroker
from tests.pg_cluster import Cluster, cluster_url, pg_cluster  # noqa: F401 - fixtures
from tests.services import postgres_schema, stop_process
from tests.waiting import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.kafka, pytest.mark.slow]

OUTAGE_S = 3.0  # how long the server stays stopped: the outage itself, not a wait
KEYS = 50
SRC = Path(tailrace.__file__).resolve().parents[1]  # the tree under test


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    with TansuBroker(tmp_path_factory.mktemp("tansu")) as started:
        yield started


def _outage(cluster: Cluster) -> None:
    cluster.stop()
    time.sleep(OUTAGE_S)
    cluster.start()


def _alive(process: subprocess.Popen[bytes], log: Path) -> None:
    assert process.poll() is None, (
        f"the worker exited ({process.returncode}):\n" + (log.read_text()[-3000:])
    )


def _wait(
    check: Callable[[], bool], process: subprocess.Popen[bytes], log: Path, what: str
) -> None:
    """Wait for `check`, failing at once if the worker exited meanwhile."""

    def done() -> bool:
        _alive(process, log)
        return check()

    wait_until(done, 90, what)


# -- the outbox relay -----------------------------------------------------------------------


def _published(url: str) -> int:
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=2) as conn:
            return outbox.counts(conn)[OutboxStatus.PUBLISHED]
    except psycopg.OperationalError:
        return -1  # the server is restarting


def _add(url: str, topic: str, first: int, count: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        outbox.add_many(
            conn,
            (OutboxEvent(topic, f"key-{n % KEYS}", b"%d" % n) for n in range(first, first + count)),
        )


def test_relay_rides_out_a_restart_and_an_outage(
    broker: TansuBroker,
    cluster_url: str,  # noqa: F811
    pg_cluster: Cluster,  # noqa: F811
    tmp_path: Path,
) -> None:
    topic = f"outbox-db-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic, partitions=3)
    migrate(cluster_url)
    log = tmp_path / "relay.log"
    options = ("--batch-size", "50", "--reconcile-every", "0.2", "--orphan-grace", "0.5")
    _add(cluster_url, topic, 0, 2000)
    relay = start_relay(cluster_url, broker.bootstrap, log, *options)
    try:
        # A restart while batches go out.
        _wait(lambda: _published(cluster_url) >= 300, relay, log, "300 published")
        pg_cluster.restart()
        _add(cluster_url, topic, 2000, 1000)
        _wait(lambda: _published(cluster_url) >= 3000, relay, log, "3000 published")
        # An outage while the relay waits for events; more come once the server is back.
        _outage(pg_cluster)
        _add(cluster_url, topic, 3000, 1000)
        _wait(lambda: _published(cluster_url) == 4000, relay, log, "4000 published")
        _alive(relay, log)
        relay.send_signal(signal.SIGTERM)
        assert relay.wait(30) == 0, log.read_text()[-3000:]
    finally:
        stop_process(relay, 10)

    records = broker.consume_all(topic, quiet=1.0, timeout=60)  # reads on past any duplicate
    ids = outbox_ids(records)
    assert len(ids) == len(set(ids)) == 4000  # nothing lost, nothing twice
    for key, values in per_key(records).items():
        numbers = [int(v or b"") for v in values]
        assert numbers == sorted(numbers), f"{key!r} out of order"
    assert "database connection lost" in log.read_text()  # the faults were seen


def test_relay_stopped_during_an_outage_exits_and_the_next_publishes_each_event_once(
    broker: TansuBroker,
    cluster_url: str,  # noqa: F811
    pg_cluster: Cluster,  # noqa: F811
    tmp_path: Path,
) -> None:
    topic = f"outbox-stop-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic, partitions=3)
    migrate(cluster_url)
    log = tmp_path / "relay.log"
    options = ("--batch-size", "50", "--reconcile-every", "0.2", "--orphan-grace", "0.5")
    _add(cluster_url, topic, 0, 1000)
    relay = start_relay(cluster_url, broker.bootstrap, log, *options)
    try:
        _wait(lambda: _published(cluster_url) == 1000, relay, log, "1000 published")
        pg_cluster.stop()
        try:
            _wait(lambda: "connection lost" in log.read_text(), relay, log, "the outage seen")
            relay.send_signal(signal.SIGTERM)
            # while the server is still down: a stop does not wait for it
            assert relay.wait(30) == 0, log.read_text()[-3000:]
            assert "stopped while the database was unreachable" in log.read_text()
        finally:
            pg_cluster.start()
    finally:
        stop_process(relay, 10)
    _add(cluster_url, topic, 1000, 500)
    relay = start_relay(cluster_url, broker.bootstrap, log, *options)
    try:
        _wait(lambda: _published(cluster_url) == 1500, relay, log, "1500 published")
    finally:
        stop_process(relay, 10)
    records = broker.consume_all(topic, quiet=1.0, timeout=60)
    ids = outbox_ids(records)
    assert len(ids) == len(set(ids)) == 1500
    for key, values in per_key(records).items():
        numbers = [int(v or b"") for v in values]
        assert numbers == sorted(numbers), f"{key!r} out of order"


# -- the consumer with its dedup store on PostgreSQL ----------------------------------------

COMMIT_EVERY = 100
# A plain handler writing to the shared server (not the faulty one): one row per call.
HANDLER = textwrap.dedent(
    """
    import os
    import psycopg

    conn = psycopg.connect(os.environ["TEST_DATABASE_URL"], autocommit=True)

    def handle(message):
        conn.execute("INSERT INTO calls (message_id) VALUES (%s)", (message.id,))
    """
)


def _produce(broker: TansuBroker, topic: str, first: int, count: int) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    for i in range(first, first + count):
        producer.produce(
            topic, b"v%d" % i, b"k%d" % (i % KEYS), headers=[("message_id", b"m%d" % i)]
        )
    assert producer.flush(10) == 0


def _distinct(conn: psycopg.Connection[tuple[int]]) -> int:
    row = conn.execute("SELECT count(DISTINCT message_id) FROM calls").fetchone()
    return int(row[0]) if row else 0


def _consume(
    tmp_path: Path, url: str, broker: TansuBroker, topic: str, group: str, dedup_url: str
) -> subprocess.Popen[bytes]:
    """`tailrace consume` with its dedup store at `dedup_url`; the handler writes to `url`."""
    command = [
        *(sys.executable, "-c", "from tailrace.cli.consume import consume; consume()", topic),
        *("--group", group, "--handler", "handlers:handle", "--partitions", "0,1"),
        *("--bootstrap-servers", broker.bootstrap, "--batch-size", "200"),
        *("--commit-every", str(COMMIT_EVERY)),
        *("--dedup-store", "postgres", "--dedup-url", dedup_url),
    ]
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), str(tmp_path)]),
        "TEST_DATABASE_URL": url,
    }
    (tmp_path / "handlers.py").write_text(HANDLER)
    with (tmp_path / "consumer.log").open("ab") as output:
        return subprocess.Popen(command, cwd=tmp_path, env=environment, stderr=output)


def test_consumer_with_postgres_dedup_rides_out_a_restart_and_an_outage(
    broker: TansuBroker,
    cluster_url: str,  # noqa: F811
    pg_cluster: Cluster,  # noqa: F811
    tmp_path: Path,
) -> None:
    topic, group = f"dedup-db-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic, partitions=2)
    log = tmp_path / "consumer.log"
    _produce(broker, topic, 0, 2000)
    with postgres_schema() as url, psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE calls (message_id text NOT NULL)")
        worker = _consume(tmp_path, url, broker, topic, group, cluster_url)
        try:
            # A restart while messages are handled.
            _wait(lambda: _distinct(conn) >= 300, worker, log, "300 handled")
            pg_cluster.restart()
            _produce(broker, topic, 2000, 1000)
            _wait(lambda: _distinct(conn) >= 3000, worker, log, "3000 handled")
            # Messages arrive while the server is down: the consumer waits for its store.
            pg_cluster.stop()
            _produce(broker, topic, 3000, 1000)
            time.sleep(OUTAGE_S)  # the outage itself
            pg_cluster.start()
            _wait(lambda: _distinct(conn) >= 4000, worker, log, "4000 handled")
            _alive(worker, log)
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(30) == 0, log.read_text()[-3000:]
        finally:
            stop_process(worker, 10)
        calls = Counter(row[0] for row in conn.execute("SELECT message_id FROM calls").fetchall())
    assert set(calls) == {f"m{i}" for i in range(4000)}  # nothing lost
    repeated = sum(calls.values()) - 4000
    assert "database connection lost" in log.read_text()  # the faults were seen
    print(f"{repeated} handler calls repeated, bound {2 * COMMIT_EVERY}")
    assert repeated <= 2 * COMMIT_EVERY


def test_consumer_stopped_during_an_outage_exits_and_the_next_loses_nothing(
    broker: TansuBroker,
    cluster_url: str,  # noqa: F811
    pg_cluster: Cluster,  # noqa: F811
    tmp_path: Path,
) -> None:
    topic, group = f"dedup-stop-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic, partitions=2)
    log = tmp_path / "consumer.log"
    _produce(broker, topic, 0, 1000)
    with postgres_schema() as url, psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE calls (message_id text NOT NULL)")
        worker = _consume(tmp_path, url, broker, topic, group, cluster_url)
        try:
            _wait(lambda: _distinct(conn) >= 1000, worker, log, "1000 handled")
            pg_cluster.stop()
            try:
                # messages arrive: the consumer needs its store, which is away
                _produce(broker, topic, 1000, 1000)
                _wait(lambda: "connection lost" in log.read_text(), worker, log, "the outage seen")
                worker.send_signal(signal.SIGTERM)
                # while the server is still down: a stop does not wait for it
                assert worker.wait(30) == 0, log.read_text()[-3000:]
                assert "stopped while the dedup store was unreachable" in log.read_text()
            finally:
                pg_cluster.start()
        finally:
            stop_process(worker, 10)
        worker = _consume(tmp_path, url, broker, topic, group, cluster_url)
        try:
            _wait(lambda: _distinct(conn) >= 2000, worker, log, "2000 handled")
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(30) == 0, log.read_text()[-3000:]
        finally:
            stop_process(worker, 10)
        calls = Counter(row[0] for row in conn.execute("SELECT message_id FROM calls").fetchall())
    assert set(calls) == {f"m{i}" for i in range(2000)}  # nothing lost
    repeated = sum(calls.values()) - 2000
    print(f"{repeated} handler calls repeated, bound {2 * COMMIT_EVERY}")
    assert repeated <= 2 * COMMIT_EVERY


# -- the producer's spool in PostgreSQL -----------------------------------------------------


def test_postgres_spool_rides_out_a_restart_and_an_outage_of_its_server(
    cluster_url: str,  # noqa: F811
    pg_cluster: Cluster,  # noqa: F811
    tmp_path: Path,
) -> None:
    broker = TansuBroker(tmp_path)  # not started: the broker is away throughout
    topic = f"spool-db-{uuid.uuid4().hex[:8]}"
    settings = BreakerSettings(delivery_timeout_s=5.0, cooldown_s=0.1, max_cooldown_s=1.0)
    spool = open_spool(cluster_url, f"spool-{uuid.uuid4().hex[:8]}")

    def batch(start: int) -> list[tuple[str, bytes, bytes, None]]:
        return [(topic, b"%d" % n, b"key-%d" % (n % KEYS), None) for n in range(start, start + 500)]

    try:
        with BreakerProducer(broker.bootstrap, spool, settings) as producer:
            producer.send_many(batch(0))
            producer.send_many(batch(500))
            wait_until(lambda: spool.count() == 1000, 30, "1000 spooled")
            pg_cluster.restart()
            producer.send_many(batch(1000))  # the connection is new: the lock taken again
            assert spool.count() == 1500
            # An outage: the drain's reads wait (and retry); the server comes back.
            _outage(pg_cluster)
            producer.send_many(batch(1500))
            assert spool.count() == 2000
            broker.start()
            # the producer, retrying all along, may have auto-created the topic first
            broker.create_topic(topic, partitions=3, exist_ok=True)
            assert producer.flush(timeout=60), f"still {producer.state}"
            assert producer.take_failed() == []
            assert spool.count() == 0
        records = broker.consume_all(topic, quiet=1.0, timeout=60)
    finally:
        broker.stop()
    values = [int(r.value or b"") for r in records]
    assert sorted(values) == list(range(2000)), "lost or repeated messages"
    for key, got in per_key(records).items():
        numbers = [int(v or b"") for v in got]
        assert numbers == sorted(numbers), f"{key!r} out of order"
