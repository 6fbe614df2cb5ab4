"""Outbox relay throughput: events/s from committed in the outbox to acknowledged by the broker
and marked, against a bare confluent-kafka produce loop of the same events in the same run.

Starts its own Tansu broker (the tests' launcher) and uses fresh schemas of the test
PostgreSQL (TAILRACE_TEST_POSTGRES). Each round runs, in this order:

- bare: the same payloads and keys through a plain produce loop (one delivery callback, no
  headers), and again with the relay's two headers per message;
- writer: the writer alone (transactions of 500 events) into a fresh schema, for reference;
- backlog: N events committed first, then relays drain them (clock: relay start to last mark);
- live: a writer process commits transactions of 500 events while the relays run (clock: first
  commit to the last event marked published): bounded by the writer.

    python bench/streams/outbox.py [--events 100000] [--rounds 3] [--relays 1] [--write]

`--write` rewrites RESULTS-outbox.md beside this script with the medians, every round, and
the load average (`uptime`) at start and end.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import multiprocessing
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the Tansu launcher and PostgreSQL helpers live with the tests

KEYS = 1_000
WRITE_CHUNK = 500


def payload(n: int) -> bytes:
    return (
        b'{"event":"order.updated","order":%d,"state":"paid","amount":%d.%02d,'
        b'"customer":"c-%d","note":"%s"}' % (n, n % 997, n % 100, n % 5003, b"x" * 96)
    )


def write_events(url: str, topic: str, start: int, stop: int) -> None:
    import psycopg

    from tailrace.streams import outbox

    with psycopg.connect(url) as conn:
        for first in range(start, stop, WRITE_CHUNK):
            with conn.transaction():
                outbox.add_many(
                    conn,
                    (
                        outbox.OutboxEvent(topic, f"key-{n % KEYS}", payload(n))
                        for n in range(first, min(stop, first + WRITE_CHUNK))
                    ),
                )


def run_relays(url: str, bootstrap: str, relays: int, stop: threading.Event) -> list[Any]:
    from tailrace.streams.outbox.relay import Relay, RelaySettings

    settings = RelaySettings(batch_size=5_000, idle_wait_s=0.05)
    running = [Relay(url, bootstrap, settings) for _ in range(relays)]
    threads = [threading.Thread(target=r.run, args=(stop,)) for r in running]
    for thread in threads:
        thread.start()
    return [running, threads]


def broker_topic(broker: Any, mode: str, relays: int) -> str:
    topic = f"outbox-{mode}-{relays}"
    broker.create_topic(topic, partitions=3)
    return topic


def relay_rate(url: str, bootstrap: str, topic: str, events: int, relays: int, live: bool) -> float:
    stop = threading.Event()
    writer = None
    if live:
        writer = multiprocessing.Process(target=write_events, args=(url, topic, 0, events))
    else:
        write_events(url, topic, 0, events)
    started = time.perf_counter()
    if writer is not None:
        writer.start()  # before the relays' threads: a fork copies no running thread
    running, threads = run_relays(url, bootstrap, relays, stop)
    while sum(r.stats.published for r in running) < events:
        time.sleep(0.005)
    elapsed = time.perf_counter() - started
    stop.set()
    for thread in threads:
        thread.join()
    for relay in running:
        relay.close()
    if writer is not None:
        writer.join()
    return events / elapsed


def bare_rate(bootstrap: str, events: int, headers: bool = False) -> float:
    from confluent_kafka import Producer

    from tailrace.streams.outbox.publish import producer_config

    producer = Producer(producer_config(bootstrap))
    values = [payload(n) for n in range(events)]
    keys = [b"key-%d" % (n % KEYS) for n in range(events)]
    acked = 0

    def delivered(err: Any, msg: Any) -> None:
        nonlocal acked
        acked += err is None

    started = time.perf_counter()
    for n, (value, key) in enumerate(zip(values, keys, strict=True)):
        extra = None
        if headers:
            ident = b"%d" % n
            extra = [("message_id", b"outbox-" + ident), ("tailrace_outbox_id", ident)]
        while True:
            try:
                producer.produce("bare", value, key, headers=extra, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(60)
    elapsed = time.perf_counter() - started
    assert acked == events, f"{acked} of {events} acknowledged"
    return events / elapsed


def writer_rate(events: int) -> float:
    from tests.services import postgres_schema

    with postgres_schema() as url:
        migrate(url)
        started = time.perf_counter()
        write_events(url, "unused", 0, events)
        return events / (time.perf_counter() - started)


def migrate(url: str) -> None:
    from tailrace.engine.store.postgres.store import PostgresStore

    store = PostgresStore(url)
    store.migrate()
    store.close()


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def one_round(broker: Any, args: argparse.Namespace, round_: int) -> dict[str, float]:
    from tests.services import postgres_schema

    figures = {
        "bare produce loop": bare_rate(broker.bootstrap, args.events),
        "bare loop, relay's 2 headers": bare_rate(broker.bootstrap, args.events, headers=True),
        "writer alone (500 per commit)": writer_rate(args.events),
    }
    for relays in (int(n) for n in args.relays.split(",")):
        for mode in ("backlog", "live"):
            with postgres_schema() as url:
                migrate(url)
                profile = args.profile and mode == "backlog" and relays == 1 and round_ == 0
                profiler = cProfile.Profile() if profile else None
                if profiler:
                    profiler.enable()
                topic = broker_topic(broker, f"{mode}-r{round_}", relays)
                figures[f"relay {mode}, {relays} relay(s)"] = relay_rate(
                    url, broker.bootstrap, topic, args.events, relays, mode == "live"
                )
                if profiler:
                    profiler.disable()
                    profiler.dump_stats(args.profile)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--relays", default="1", help="relay counts to run, comma-separated")
    parser.add_argument("--profile", help="cProfile the first backlog relay into this file")
    parser.add_argument("--json", dest="json_path", help="also write the figures here")
    parser.add_argument("--write", action="store_true", help="rewrite RESULTS-outbox.md")
    args = parser.parse_args()

    from tests.kafka_broker import TansuBroker

    started_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_start = load()
    rounds: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as workdir, TansuBroker(Path(workdir)) as broker:
        broker.create_topic("bare", partitions=3)
        for round_ in range(args.rounds):
            rounds.append(one_round(broker, args, round_))
            print(
                f"round {round_ + 1}: " + ", ".join(f"{k} {v:,.0f}" for k, v in rounds[-1].items())
            )
    load_end = load()
    names = list(rounds[0])
    medians = {name: statistics.median(r[name] for r in rounds) for name in names}
    bare = medians["bare produce loop"]
    for name in names:
        print(f"{name:>32}: {medians[name]:>10,.0f} events/s  ({medians[name] / bare:.2f} of bare)")
    figures = {
        "events": args.events,
        "keys": KEYS,
        "machine": f"{platform.machine()}, {multiprocessing.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "load_start": load_start,
        "load_end": load_end,
        "medians": medians,
        "rounds": rounds,
    }
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(figures, indent=2) + "\n")
    if args.write:
        write_results(args, started_at, figures)


def write_results(args: argparse.Namespace, started_at: str, figures: dict[str, Any]) -> None:
    medians: dict[str, float] = figures["medians"]
    rounds: list[dict[str, float]] = figures["rounds"]
    bare = medians["bare produce loop"]
    header = "| measure | " + " | ".join(f"round {i + 1}" for i in range(len(rounds)))
    lines = [header + " | median | of bare |", "|---" * (len(rounds) + 3) + "|"]
    for name, value in medians.items():
        cells = " | ".join(f"{r[name]:,.0f}" for r in rounds)
        lines.append(f"| {name} | {cells} | {value:,.0f} | {value / bare:.2f} |")
    name = "relay backlog, 1 relay(s)"
    verdict = "not run"
    if name in medians:
        ratios = [r[name] / r["bare produce loop"] for r in rounds]
        cells = " | ".join(f"{ratio:.2f}" for ratio in ratios)
        ratio = statistics.median(ratios)
        lines.append(f"| one relay / bare loop, same round | {cells} | {ratio:.2f} | |")
        met = "met" if ratio >= 0.5 else "NOT met"
        verdict = f"{ratio:.2f} of the bare loop (median of the rounds' ratios): target {met}"
    text = RESULTS_TEMPLATE.format(
        started=started_at,
        machine=figures["machine"],
        events=args.events,
        rounds=args.rounds,
        relays=args.relays,
        keys=KEYS,
        load_start=figures["load_start"],
        load_end=figures["load_end"],
        table="\n".join(lines),
        verdict=verdict,
    )
    Path(__file__).with_name("RESULTS-outbox.md").write_text(text)


RESULTS_TEMPLATE = """# Outbox relay benchmark

Measured {started} on {machine}, PostgreSQL 15 on 127.0.0.1, Tansu (in-memory) started by
the script:

    python bench/streams/outbox.py --events {events} --rounds {rounds} --relays {relays} --write

Load average at start: `{load_start}`
Load average at end: `{load_end}`

{events:,} events of ~230 bytes over {keys:,} keys, topics of 3 partitions, batches of 5,000,
idempotent producer (`acks=all`, lz4). Events/s from committed to acknowledged and marked
published (deleted). Each round runs every line once; the bare loops use the same payloads,
keys and producer settings. The machine is shared with other work: compare within a round.

{table}

One relay, backlog (the issue's target, >= 0.5: commit -> broker ack in one process):
{verdict}. "live" is bounded by the writer (compare the writer-alone row), not the relay.

Where a relay's time goes: `python bench/streams/outbox_phases.py` (seconds per phase while
one relay drains a backlog; see docs/streams.md, "The transactional outbox", for a run).
"""


if __name__ == "__main__":
    main()
