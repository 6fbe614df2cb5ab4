"""examples/stream-workers (docs/guides/stream-workers.md): the outbox relayed, a spool
filled during an outage and drained, every event billed once."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tests.kafka_broker import TansuBroker

from .conftest import Example

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.kafka]


def test_outbox_spool_and_consumer(tmp_path: Path, pg_url: str, broker: TansuBroker) -> None:
    topic = f"orders-{uuid.uuid4().hex[:8]}"  # not created beforehand: the example does it
    example = Example("stream-workers", tmp_path)
    example.run(DATABASE_URL=pg_url, KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap, TOPIC=topic)

    records = broker.consume_all(topic, expected=13)
    ids = [r.header("message_id") or b"" for r in records]
    placed = [f"order-{i}-placed".encode() for i in range(1, 11)]
    shipped = [f"order-{i}-shipped".encode() for i in range(1, 4)]
    assert sorted(ids[:10]) == sorted(placed) and sorted(ids[10:]) == sorted(shipped)
    for key in {r.key for r in records}:  # each customer's events in the order written
        of_key = [json.loads(r.value or b"") for r in records if r.key == key]
        placed_orders = [e["order"] for e in of_key if e["event"] == "placed"]
        assert placed_orders == sorted(placed_orders)

    billed = [
        json.loads(line) for line in (example.work / "billed.ndjson").read_text().splitlines()
    ]
    assert sorted(b["id"] for b in billed) == sorted(i.decode() for i in placed + shipped)
    assert {b["key"] for b in billed} == {"customer-0", "customer-1", "customer-2"}
