"""`consume` says what it does: start, the partitions assigned and revoked, stop; each on one
log line (a real broker, the group protocol)."""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import Iterator

import orjson
import pytest

from tailrace.observability import logs
from tailrace.streams import Consumer, Message
from tests.integration.streams.test_consumer import config, produce, run_until
from tests.kafka_broker import TansuBroker

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    with TansuBroker(tmp_path_factory.mktemp("tansu")) as started:
        yield started


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """The process's log lines as `tailrace consume` writes them (JSON)."""
    out = io.StringIO()
    logs.configure("INFO", out, fmt="json")
    yield out
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not getattr(h, "_tailrace", False)]
    root.setLevel(logging.WARNING)
    logs._state["format"] = None


def test_consume_logs_start_assignment_revocation_and_stop(
    broker: TansuBroker, log_lines: io.StringIO
) -> None:
    topic = f"logs-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic, partitions=2)
    produce(broker, topic, [(f"k{i}", b"v") for i in range(4)], ids=True)
    handled: list[str | None] = []

    def handler(message: Message) -> None:
        logging.getLogger("myapp.handler").info("handled")
        handled.append(message.id)

    # Tansu holds a new group's first join for half the session timeout (45 s by default)
    short_session = {"session.timeout.ms": "2000", "heartbeat.interval.ms": "500"}
    cfg = config(broker, topic, partitions=None, kafka=short_session)
    with Consumer(cfg, handler) as consumer:
        run_until(consumer, lambda: len(handled) == 4, timeout=30)
    entries = [orjson.loads(line) for line in log_lines.getvalue().splitlines()]
    said = [
        (e["message"], e.get("partitions"))
        for e in entries
        if e["logger"] == "tailrace.streams.consumer"
    ]
    messages = [m for m, _ in said]
    assert messages[0] == "consumer started" and messages[-1] == "consumer stopped", said
    assert ("partitions assigned", [0, 1]) in said
    assert ("partitions revoked", [0, 1]) in said
    assert messages.index("partitions assigned") < messages.index("partitions revoked")
    # the handler's own lines carry the id of the message they are about, tracing off
    ids = [e.get("message_id") for e in entries if e["logger"] == "myapp.handler"]
    assert sorted(map(str, ids)) == sorted(map(str, handled)) and None not in ids
