"""Coming from the Kafka workers: their fallback list (``fallback:message_queue``) shared with
tailrace, both ways, on Redis and a Tansu broker; `tailrace spool drain --follow` as their
backfill worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from click.testing import CliRunner

from tailrace.cli.spool import spool
from tailrace.streams.producer import BreakerProducer, BreakerSettings
from tailrace.streams.spool import open_spool
from tailrace.streams.spool.circuit import CircuitState
from tests.integration.streams.test_consumer import REDIS_URL, redis_url  # noqa: F401
from tests.kafka_broker import TansuBroker
from tests.services import free_port
from tests.waiting import wait_until

pytestmark = pytest.mark.kafka
SRC = Path(__file__).resolve().parents[3] / "src"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    with TansuBroker(tmp_path_factory.mktemp("tansu")) as started:
        yield started


@pytest.fixture
def queue(redis_url: str) -> Iterator[tuple[Any, str]]:  # noqa: F811
    """Their list (a name of its own per test) and a client on it."""
    client = redis.Redis.from_url(redis_url)
    name = f"fallback:message_queue:{uuid.uuid4().hex[:8]}"
    yield client, name
    client.delete(name, f"tailrace:spool-owner:{name}")
    client.close()


def api_message(n: int) -> dict[str, Any]:
    """What their API pushes when its Kafka circuit is open (the outbox payload)."""
    return {
        "message_id": str(uuid.uuid4()),
        "conversation_id": 456,
        "sender_id": 123,
        "payload": {"type": "text", "text": f"hello {n}"},
        "channels": ["whatsapp"],
        "created_at": "2025-12-02T10:30:00",
        "trace_id": None,
        "request_id": None,
    }


def test_drain_sends_what_their_api_pushed_in_order(
    broker: TansuBroker, queue: tuple[Any, str]
) -> None:
    client, name = queue
    topic = f"message_processing_{uuid.uuid4().hex[:6]}"
    broker.create_topic(topic)
    messages = [api_message(n) for n in range(25)]
    client.rpush(name, *(orjson.dumps(m) for m in messages))
    url = f"redis+list://127.0.0.1:6379/0?topic={topic}"
    result = CliRunner().invoke(
        spool, ["drain", name, "--url", url, "--bootstrap-servers", broker.bootstrap]
    )
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.output) == {"spool": name, "drained": 25, "left": 0, "refused": 0}
    assert client.llen(name) == 0
    records = broker.consume_all(topic, expected=25)
    assert [orjson.loads(r.value or b"") for r in records] == messages


def test_a_list_without_its_topic_is_refused_with_the_fix(queue: tuple[Any, str]) -> None:
    client, name = queue
    client.rpush(name, orjson.dumps(api_message(0)))
    result = CliRunner().invoke(
        spool, ["drain", name, "--url", "redis+list://127.0.0.1:6379/0", "--timeout", "5"]
    )
    assert result.exit_code != 0
    assert "?topic=" in str(result.exception) and client.llen(name) == 1


def test_our_producer_spools_entries_their_backfill_worker_reads(queue: tuple[Any, str]) -> None:
    client, name = queue
    down = f"127.0.0.1:{free_port()}"  # no broker there
    settings = BreakerSettings(delivery_timeout_s=1.0, cooldown_s=60.0)
    url = "redis+list://127.0.0.1:6379/0?topic=message_processing"
    producer = BreakerProducer(down, open_spool(url, name), settings)
    messages = [api_message(n) for n in range(5)]
    try:
        wait_until(lambda: producer.state is CircuitState.OPEN, 20, "the circuit to open")
        for message in messages:
            producer.send("message_processing", orjson.dumps(message), key=b"conversation:456")
    finally:
        producer.close(timeout=0.5)
    # Read the way their backfill worker reads: LPOP, json.loads, .get("message_id").
    read = []
    while (entry := client.lpop(name)) is not None:
        read.append(orjson.loads(entry))
    assert [m.get("message_id") for m in read] == [m["message_id"] for m in messages]
    assert read == messages


def test_drain_follow_is_their_standing_backfill_worker(
    broker: TansuBroker, queue: tuple[Any, str], tmp_path: Path
) -> None:
    client, name = queue
    topic = f"message_processing_{uuid.uuid4().hex[:6]}"
    broker.create_topic(topic)
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "TAILRACE_SPOOL_URL": f"redis+list://127.0.0.1:6379/0?topic={topic}",
        "FALLBACK_POLL_INTERVAL": "0.1",
        "FALLBACK_BATCH_SIZE": "3",
    }
    command = [sys.executable, "-m", "tailrace", "spool", "drain", name, "--follow"]
    with (tmp_path / "drain.log").open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        first = [api_message(n) for n in range(7)]
        client.rpush(name, *(orjson.dumps(m) for m in first))
        broker.consume_all(topic, expected=7)
        later = [api_message(n) for n in range(7, 10)]  # pushed while it runs
        client.rpush(name, *(orjson.dumps(m) for m in later))
        records = broker.consume_all(topic, expected=10)
        wait_until(lambda: client.llen(name) == 0, 20, "the list to empty")
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(30)
    assert code == 0, (tmp_path / "drain.log").read_text()
    assert [orjson.loads(r.value or b"") for r in records] == first + later


def test_the_list_removes_exactly_the_acknowledged_entries(queue: tuple[Any, str]) -> None:
    """Entries acknowledged out of a batch (the rest failed in an outage) leave the list; the
    others keep their place, ahead of what their API pushed meanwhile."""
    client, name = queue
    url = "redis+list://127.0.0.1:6379/0?topic=message_processing"
    bodies = [orjson.dumps(api_message(n)) for n in range(5)]
    client.rpush(name, *bodies)
    first = open_spool(url, name)
    second = open_spool(url, name)
    try:
        batch = first.head(5)
        assert [e.value for e in batch] == bodies
        assert second.head(5) == []  # one drainer at a time
        client.rpush(name, b'{"message_id": "pushed meanwhile"}')
        first.remove([batch[0], batch[2], batch[4]])
        assert client.lrange(name, 0, -1) == [
            bodies[1],
            bodies[3],
            b'{"message_id": "pushed meanwhile"}',
        ]
        first.close()
        assert [e.value for e in second.head(2)] == [bodies[1], bodies[3]]  # its turn now
    finally:
        second.close()
