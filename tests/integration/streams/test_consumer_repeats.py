"""`tailrace consume` with a plain handler (no `claim`), killed with SIGKILL at random points
several times: nothing is lost, and the handler calls and outputs repeated after each kill
stay within the bound `docs/streams.md` states (2 x commit_every per kill), for each dedup
store."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import Producer

import tailrace
from tailrace.streams.consumer.config import DEFAULT_COMMIT_EVERY
from tests.integration.streams.outbox_support import redis_url
from tests.kafka_broker import TansuBroker
from tests.services import postgres_schema
from tests.waiting import wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

COUNT = 8000
KILLS = 3
BATCH = 2000  # bigger than commit_every: a batch alone is no longer the unit of repeats
SRC = Path(tailrace.__file__).resolve().parents[1]  # the tree under test

# A plain handler: its write is not in the dedup store's transaction, so what a kill
# repeats shows here (one row per call), and in its outputs.
HANDLER = textwrap.dedent(
    """
    import os
    import psycopg
    from tailrace.streams import Output

    conn = psycopg.connect(os.environ["TEST_DATABASE_URL"], autocommit=True)

    def handle(message):
        conn.execute("INSERT INTO calls (message_id, pid) VALUES (%s, %s)",
                     (message.id, os.getpid()))
        return [Output(message.id.encode(), key=message.key)]
    """
)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    with TansuBroker(tmp_path_factory.mktemp("tansu")) as started:
        yield started


def _consume(
    tmp_path: Path, url: str, broker: TansuBroker, topic: str, group: str, store: str
) -> subprocess.Popen[bytes]:
    dedup_url = {"postgres": url, "redis": redis_url(), "none": None}[store]
    command = [
        *(sys.executable, "-c", "from tailrace.cli.consume import consume; consume()", topic),
        *("--group", group, "--handler", "handlers:handle", "--route-to", f"{topic}-out"),
        *("--bootstrap-servers", broker.bootstrap, "--batch-size", str(BATCH)),
        *("--dedup-store", store, "--partitions", "0,1"),
        *(("--dedup-url", dedup_url) if dedup_url else ()),
    ]
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), str(tmp_path)]),
        "TEST_DATABASE_URL": url,
    }
    with (tmp_path / "consumer.log").open("ab") as log:
        return subprocess.Popen(command, cwd=tmp_path, env=environment, stderr=log)


@pytest.mark.parametrize("store", ["postgres", "redis", "none"])
def test_kills_repeat_at_most_the_documented_bound(
    broker: TansuBroker, tmp_path: Path, store: str
) -> None:
    rng = random.Random()
    topic, group = f"rep-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic, partitions=2)
    broker.create_topic(f"{topic}-out", partitions=2)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    for i in range(COUNT):
        producer.produce(topic, b"v%d" % i, b"k%d" % (i % 50), headers=[("message_id", b"m%d" % i)])
    assert producer.flush(10) == 0
    producer.close()
    (tmp_path / "handlers.py").write_text(HANDLER)

    with postgres_schema() as url, psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE calls (message_id text NOT NULL, pid int NOT NULL)")
        for _ in range(KILLS):
            # Killed at a random point: after a random number of further calls, then a
            # random moment more.
            target = _calls(conn) + rng.randrange(300, 1500)
            worker = _consume(tmp_path, url, broker, topic, group, store)
            wait_until(lambda t=target: _calls(conn) >= t, 90, f"{target} handler calls")
            try:
                wait_until(lambda: False, rng.uniform(0, 0.3), "a random delay")
            except AssertionError:
                pass
            worker.send_signal(signal.SIGKILL)
            assert worker.wait(20) == -signal.SIGKILL

        last = _consume(tmp_path, url, broker, topic, group, store)
        try:
            wait_until(lambda: _distinct(conn) >= COUNT, 120, "every message handled")
        finally:
            last.terminate()
            assert last.wait(30) == 0, (tmp_path / "consumer.log").read_text()[-2000:]

        calls = Counter(row[0] for row in conn.execute("SELECT message_id FROM calls").fetchall())
    bound = KILLS * 2 * DEFAULT_COMMIT_EVERY
    assert set(calls) == {f"m{i}" for i in range(COUNT)}  # nothing lost
    repeated_calls = sum(calls.values()) - COUNT
    outputs = Counter(r.value for r in broker.consume_all(f"{topic}-out"))
    assert set(outputs) == {b"m%d" % i for i in range(COUNT)}
    repeated_outputs = sum(outputs.values()) - COUNT
    print(f"{store}: {repeated_calls} calls and {repeated_outputs} outputs repeated, bound {bound}")
    assert repeated_calls <= bound
    assert repeated_outputs <= bound


def _calls(conn: psycopg.Connection[tuple[int]]) -> int:
    row = conn.execute("SELECT count(*) FROM calls").fetchone()
    return int(row[0]) if row else 0


def _distinct(conn: psycopg.Connection[tuple[int]]) -> int:
    row = conn.execute("SELECT count(DISTINCT message_id) FROM calls").fetchone()
    return int(row[0]) if row else 0
