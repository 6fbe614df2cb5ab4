"""`tailrace consume` killed (SIGKILL) in the middle of a batch, then started again: every
message is handled exactly once, counted by the handler itself in PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import Producer

from tests.kafka_broker import TansuBroker
from tests.services import postgres_schema
from tests.waiting import wait_until

pytestmark = pytest.mark.kafka

COUNT = 3000
KILL_AT = 1234  # the handler call during which the first consumer kills itself
SRC = Path(__file__).resolve().parents[3] / "src"

# The handler claims the message id in the transaction of its own write (`claim`), so its
# effect and the dedup mark commit together: the killed step's handled-but-unmarked
# messages come again and are found claimed.
HANDLER = textwrap.dedent(
    """
    import os, signal
    import psycopg
    from tailrace.streams import claim

    conn = psycopg.connect(os.environ["TEST_DATABASE_URL"])
    calls = 0

    def handle(message):
        global calls
        calls += 1
        if calls == int(os.environ.get("KILL_AT", "0")):
            os.kill(os.getpid(), signal.SIGKILL)
        with conn.transaction():
            if claim(conn, os.environ["TEST_GROUP"], message.id):
                conn.execute(
                    "INSERT INTO handled (message_id, pid) VALUES (%s, %s)",
                    (message.id, os.getpid()),
                )
    """
)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    with TansuBroker(tmp_path_factory.mktemp("tansu")) as started:
        yield started


def _consume(
    tmp_path: Path, url: str, broker: TansuBroker, topic: str, group: str, **env: str
) -> subprocess.Popen[bytes]:
    command = [
        *(sys.executable, "-c", "from tailrace.cli.consume import consume; consume()", topic),
        *("--group", group, "--handler", "handlers:handle"),
        *("--bootstrap-servers", broker.bootstrap, "--dedup-url", url, "--batch-size", "500"),
        # Assigned, not subscribed: the killed member would hold its partitions in the
        # group until its session expired.
        *("--partitions", "0,1"),
    ]
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), str(tmp_path)]),
        "TEST_DATABASE_URL": url,
        "TEST_GROUP": group,
        **env,
    }
    with (tmp_path / "consumer.log").open("ab") as log:
        return subprocess.Popen(command, cwd=tmp_path, env=environment, stderr=log)


def test_a_consumer_killed_mid_batch_loses_and_repeats_nothing(
    broker: TansuBroker, tmp_path: Path
) -> None:
    topic, group = f"kill-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic, partitions=2)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    for i in range(COUNT):
        producer.produce(topic, b"v%d" % i, b"k%d" % (i % 50), headers=[("message_id", b"m%d" % i)])
    assert producer.flush(10) == 0
    producer.close()
    (tmp_path / "handlers.py").write_text(HANDLER)

    with postgres_schema() as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE handled (message_id text NOT NULL, pid int NOT NULL)")

            first = _consume(tmp_path, url, broker, topic, group, KILL_AT=str(KILL_AT))
            assert first.wait(60) == -signal.SIGKILL
            before = _count(conn)
            assert 0 < before < COUNT

            second = _consume(tmp_path, url, broker, topic, group)
            try:
                wait_until(lambda: _count(conn) >= COUNT, 60, "every message handled")
            finally:
                second.terminate()
                assert second.wait(20) == 0, (tmp_path / "consumer.log").read_text()[-2000:]

            rows = conn.execute("SELECT message_id, count(*) FROM handled GROUP BY 1").fetchall()
            assert len(rows) == COUNT and all(n == 1 for _, n in rows)
            # The second consumer started from the last commit, before the killed step: it
            # got some handled messages again, and the dedup store dropped them.
            pids = conn.execute("SELECT count(DISTINCT pid) FROM handled").fetchone()
            assert pids == (2,)


def _count(conn: psycopg.Connection[tuple[int]]) -> int:
    row = conn.execute("SELECT count(*) FROM handled").fetchone()
    return int(row[0]) if row else 0
