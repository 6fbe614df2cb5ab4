"""The stream consumer benchmark: `tailrace.streams.Consumer` with a no-op handler and each
dedup store (PostgreSQL, Redis, none), against a bare confluent-kafka consume loop of the
same topic in the same run (the raw limit), round after round.

    python bench/streams/consumer.py [--messages 500000] [--rounds 3] [--write]

Targets (issue 16), each a ratio of medians against the bare loop of the same run:
PostgreSQL dedup >= 0.5, Redis dedup >= 0.5, no dedup >= 0.8. Each message is ~200 bytes
with a key (50 keys) and a ``message_id`` header, as a producer of reference 004 sends
them; every loop reads all of it from Tansu (2 partitions, assigned directly) in one
process, with the consumer's default checkpoint (`commit_every` 500, 1 s), which sets what
a SIGKILL can repeat. `--write` rewrites RESULTS-consumer.md beside this script, with the
machine's load average at the start and the end of the run.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))  # the Tansu launcher lives with the tests

PG_URL = os.environ.get("TAILRACE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TAILRACE_TEST_REDIS", "redis://127.0.0.1:6379/0")
PARTITIONS = 2
# (name, dedup store, target ratio to the bare loop)
LOOPS = [
    ("tailrace consume, PostgreSQL dedup", "postgres", 0.5),
    ("tailrace consume, Redis dedup", "redis", 0.5),
    ("tailrace consume, no dedup", "none", 0.8),
]
RAW = "bare confluent-kafka consume"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


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
    # As `Consumer.run` does: this process holds tens of thousands of objects from the
    # other loops' imports, and the garbage collections set off by each batch's messages
    # would walk them all (measured: the bare loop at 83k/s without, 133k/s with).
    gc.freeze()
    started = time.perf_counter()
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    seen = 0
    while seen < count:
        for message in consumer.consume(5000, 1.0):
            if message.error() is None:
                message.value()
                seen += 1
    elapsed = time.perf_counter() - started
    gc.unfreeze()
    consumer.close()
    return count / elapsed


def tailrace_loop(bootstrap: str, topic: str, count: int, store: str, url: str | None) -> float:
    """Messages/s of `Consumer` with a no-op handler and `store`, in a fresh group: every
    message is new, so every one's id is taken in the store."""
    from tailrace.streams import Consumer as StreamConsumer
    from tailrace.streams import ConsumerConfig, Message
    from tailrace.streams.dedup import open_dedup

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

    dedup = open_dedup(store, url, group, 86400)
    consumer = StreamConsumer(config, handler, dedup=dedup)
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
    parser.add_argument("--only", choices=["postgres", "redis", "none"], action="append")
    parser.add_argument("--write", action="store_true", help="rewrite RESULTS-consumer.md")
    args = parser.parse_args()

    import psycopg
    import redis
    from tests.kafka_broker import TansuBroker
    from tests.services import schema_url

    load_start = load()
    loops = [loop for loop in LOOPS if not args.only or loop[1] in args.only]
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    urls = {"postgres": schema_url(schema), "redis": REDIS_URL, "none": None}
    rates: dict[str, list[float]] = {RAW: [], **{name: [] for name, _, _ in loops}}
    try:
        with tempfile.TemporaryDirectory() as workdir, TansuBroker(Path(workdir)) as broker:
            topic = f"bench-{uuid.uuid4().hex[:8]}"
            broker.create_topic(topic, partitions=PARTITIONS)
            started = time.perf_counter()
            fill(broker.bootstrap, topic, args.messages)
            log(f"produced {args.messages} in {time.perf_counter() - started:.1f} s")
            runs: list[tuple[str, Callable[[], float]]] = [
                (RAW, lambda: raw_loop(broker.bootstrap, topic, args.messages))
            ]
            for name, store, _ in loops:
                runs.append(
                    (
                        name,
                        lambda s=store: tailrace_loop(
                            broker.bootstrap, topic, args.messages, s, urls[s]
                        ),
                    )
                )
            for round_ in range(args.rounds):
                # Each round in another order: a loop's place in it should not favour it.
                shift = round_ % len(runs)
                for name, run in runs[shift:] + runs[:shift]:
                    rates[name].append(run())
                    log(f"round {round_ + 1}: {name} {rates[name][-1]:,.0f}/s")
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter("tailrace:dedup:bench-*", count=10_000))
        keys += list(client.scan_iter("tailrace:dedup-done:bench-*", count=10_000))
        for start in range(0, len(keys), 10_000):
            client.delete(*keys[start : start + 10_000])
        client.close()
    report = summary(args, loops, rates, load_start, load())
    print(report)
    if args.write:
        (HERE / "RESULTS-consumer.md").write_text(report)


def summary(
    args: argparse.Namespace,
    loops: list[tuple[str, str, float]],
    rates: dict[str, list[float]],
    load_start: str,
    load_end: str,
) -> str:
    raw = statistics.median(rates[RAW])
    rows = [
        "# Stream consumer: results",
        "",
        f"    python bench/streams/consumer.py --messages {args.messages} --rounds {args.rounds}",
        "",
        "| loop | median msg/s | min to max msg/s | median ratio to bare | target | met |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
        f"| {RAW} | {raw:,.0f} | {min(rates[RAW]):,.0f} to {max(rates[RAW]):,.0f} | 1.00 | | |",
    ]
    for name, _, target in loops:
        median = statistics.median(rates[name])
        ratio = median / raw
        rows.append(
            f"| {name}, no-op handler | {median:,.0f} | {min(rates[name]):,.0f} to "
            f"{max(rates[name]):,.0f} | {ratio:.2f} | >= {target} | "
            f"{'met' if ratio >= target else 'NOT met'} |"
        )
    rows += [
        "",
        f"{args.messages:,} messages of ~200 bytes (key + `message_id` header) from Tansu, "
        f"2 partitions, one process, {args.rounds} rounds (each loop once per round, in an "
        "order that turns from round to round, from the start of the topic, a fresh "
        "consumer group: every message's id taken in the dedup store); default checkpoint "
        "(`commit_every` 500, 1 s); the garbage collector's old objects frozen in every "
        "loop (`gc.freeze`).",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, Python {platform.python_version()}, "
        f"{os.cpu_count()} cores shared with Tansu, PostgreSQL, Redis and other sessions' work. "
        f"Load average (1, 5, 15 min) at start: {load_start}; at end: {load_end}. "
        "Compare within a run: the ratios, not the absolute figures.",
        "",
    ]
    return "\n".join(rows)


if __name__ == "__main__":
    main()
