"""examples/replay-failover-logs (docs/guides/replay-failover-logs.md): local files into a
file, S3 into a file with filters, and into Kafka."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.kafka_broker import TansuBroker

from .conftest import Example

pytestmark = [pytest.mark.slow, pytest.mark.kafka]


def test_replays_from_a_directory_s3_and_into_kafka(
    tmp_path: Path, s3_env: dict[str, str], broker: TansuBroker
) -> None:
    topic = f"failover-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic)
    example = Example("replay-failover-logs", tmp_path)
    example.run(KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap, KAFKA_TOPIC=topic, environ=s3_env)

    work = example.work
    logs = [line for f in sorted((work / "logs").iterdir()) for line in _lines(f)]
    good = [orjson.loads(line) for line in logs if _json(line)]
    out = (work / "out.ndjson").read_bytes().splitlines()
    assert len(out) == len(good) > 3900  # every good line, and the broken ones aside
    dead = (work / "out.deadletter.ndjson").read_bytes().splitlines()
    assert len(out) + len(dead) == len(logs)

    stream = (work / "sample-logs.txt").read_text().split("Stream ids: ")[1].split(",")[0]
    one_day = [e for e in good if _stream(e) == stream and _time(e).startswith("2026-11-11")]
    from_s3 = [orjson.loads(line) for line in (work / "out-s3.ndjson").read_bytes().splitlines()]
    assert sorted(e["messageId"] for e in from_s3) == sorted(e["messageId"] for e in one_day)
    assert one_day

    summary = json.loads((work / "kafka-summary.json").read_text())
    records = broker.consume_all(topic, expected=summary["sent"])
    of_stream = {e["messageId"] for e in good if _stream(e) == stream}
    assert {r.key.decode() for r in records if r.key} == of_stream
    assert all(r.header("connection_ids") == b"warehouse" for r in records)


def _stream(event: dict[str, Any]) -> str | None:
    # the default stream-id fields, in the order tailrace tries them
    origin = event.get("origin") or {}
    for name in ("sourceId", "source_id", "slug"):
        if origin.get(name):
            return str(origin[name])
    return None


def _time(event: dict[str, Any]) -> str:
    for name in ("messageCreated", "timestamp", "receivedAt"):
        if event.get(name):
            return str(event[name])
    return ""


def _lines(path: Path) -> list[bytes]:
    import gzip

    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    return [line for line in data.splitlines() if line.strip()]


def _json(line: bytes) -> bool:
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return True
