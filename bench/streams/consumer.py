"""The stream consumer benchmark: `tailrace.streams.Consumer` with PostgreSQL dedup and a
no-op handler, against a bare confluent-kafka consume loop of the same topic in the same
run (the raw limit). Target (issue 6): >= 50,000 messages/s per process.

    python bench/streams/consumer.py [--messages 500000] [--rounds 3] [--write]

Each message is ~200 bytes with a key (50 keys) and a ``message_id`` header, as a producer
of reference 004 sends them; both loops read all of it from Tansu (2 partitions, assigned
directly) in one process. `--write` rewrites RESULTS-consumer.md beside this script.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))  # the Tansu launcher lives with the tests

PG_URL = os.environ.get("TAILRACE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
PARTITIONS = 2


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def fill(bootstrap: str, topic: str, count: int) -> None:
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 20, "compression.type": "lz4"}
    )
    body = b'{"conversation_id": 456, "channel": "whatsapp", "text": "' + b"x" * 120 + b'"}'
    for i in range(count):
        headers = [("message_id", uuid.UUID(int=i).hex.encode())]
        while True:
            try:
                producer.produce(topic, body, b"user-%d" % (i % 50), headers=headers)
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(60) == 0
    producer.close()


def raw_loop(bootstrap: str, topic: str, count: int) -> float:
    """Messages/s of a bare consume loop that touches each value (the raw limit)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"raw-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "queued.min.messages": 200_000,
        }
    )
    started = time.perf_counter()
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    seen = 0
    while seen < count:
        for message in consumer.consume(5000, 1.0):
            if message.error() is None:
                message.value()
                seen += 1
    elapsed = time.perf_counter() - started
    consumer.close()
    return count / elapsed


def tailrace_loop(bootstrap: str, topic: str, count: int, pg_url: str) -> float:
    """Messages/s of `Consumer` with PostgreSQL dedup and a no-op handler, fresh group."""
    from tailrace.streams import Consumer as StreamConsumer
    from tailrace.streams import ConsumerConfig, Message, PostgresDedup

    group = f"bench-{uuid.uuid4().hex[:8]}"
    config = ConsumerConfig(
        topic=topic,
        group=group,
        bootstrap_servers=bootstrap,
        partitions=list(range(PARTITIONS)),
        poll_timeout_s=0.2,
    )

    def handler(message: Message) -> None:
        return None

    consumer = StreamConsumer(config, handler, dedup=PostgresDedup(pg_url, group, 86400))
    with consumer:
        started = time.perf_counter()
        consumer.run(until=lambda: consumer.stats.handled >= count)
        elapsed = time.perf_counter() - started
    assert consumer.stats.handled == count, consumer.stats
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=500_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="rewrite RESULTS-consumer.md")
    args = parser.parse_args()

    import psycopg
    from tests.kafka_broker import TansuBroker
    from tests.services import schema_url

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    raw: list[float] = []
    ours: list[float] = []
    try:
        with tempfile.TemporaryDirectory() as workdir, TansuBroker(Path(workdir)) as broker:
            topic = f"bench-{uuid.uuid4().hex[:8]}"
            broker.create_topic(topic, partitions=PARTITIONS)
            started = time.perf_counter()
            fill(broker.bootstrap, topic, args.messages)
            log(f"produced {args.messages} in {time.perf_counter() - started:.1f} s")
            for round_ in range(args.rounds):
                raw.append(raw_loop(broker.bootstrap, topic, args.messages))
                url = schema_url(schema)
                ours.append(tailrace_loop(broker.bootstrap, topic, args.messages, url))
                log(f"round {round_ + 1}: raw {raw[-1]:,.0f}/s, tailrace {ours[-1]:,.0f}/s")
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
    report = summary(args.messages, raw, ours)
    print(report)
    if args.write:
        (HERE / "RESULTS-consumer.md").write_text(report)


def summary(count: int, raw: list[float], ours: list[float]) -> str:
    best, median = max(ours), statistics.median(ours)
    return "\n".join(
        [
            "| loop | best msg/s | median msg/s | rounds |",
            "| --- | ---: | ---: | ---: |",
            f"| bare confluent-kafka consume | {max(raw):,.0f} | {statistics.median(raw):,.0f} "
            f"| {len(raw)} |",
            f"| tailrace Consumer, PostgreSQL dedup, no-op handler | {best:,.0f} "
            f"| {median:,.0f} | {len(ours)} |",
            "",
            f"{count:,} messages; tailrace median at {median / statistics.median(raw):.0%} of "
            f"the raw median; target >= 50,000/s: {'met' if median >= 50_000 else 'NOT met'}. "
            f"{datetime.now(UTC):%Y-%m-%d}, {platform.python_version()}, "
            f"{os.cpu_count()} cores.",
            "",
        ]
    )


if __name__ == "__main__":
    main()
