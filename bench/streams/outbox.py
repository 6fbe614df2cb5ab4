"""Outbox relay throughput: events/s from committed in the outbox to acknowledged by the broker,
against a bare confluent-kafka produce loop of the same events in the same run.

Starts its own Tansu broker (the tests' launcher) and uses a fresh schema of the test
PostgreSQL (TAILRACE_TEST_POSTGRES). Modes:

- backlog: N events committed first, then relays drain them (clock: relay start to last mark).
- live: a writer process commits transactions of 500 events while the relays run (clock: first
  commit to the last event marked published).

    python bench/streams/outbox.py [--events 200000] [--relays 1,2] [--profile out.prof]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import multiprocessing
import platform
import sys
import tempfile
import threading
import time
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
    from tailrace.streams.relay import Relay, RelaySettings

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


def bare_rate(bootstrap: str, events: int) -> float:
    from confluent_kafka import Producer

    from tailrace.streams.outbox_publish import producer_config

    producer = Producer(producer_config(bootstrap))
    values = [payload(n) for n in range(events)]
    keys = [b"key-%d" % (n % KEYS) for n in range(events)]
    acked = 0

    def delivered(err: Any, msg: Any) -> None:
        nonlocal acked
        acked += err is None

    started = time.perf_counter()
    for value, key in zip(values, keys, strict=True):
        while True:
            try:
                producer.produce("bare", value, key, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(60)
    elapsed = time.perf_counter() - started
    assert acked == events, f"{acked} of {events} acknowledged"
    return events / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--relays", default="1,2", help="relay counts to run, comma-separated")
    parser.add_argument("--profile", help="cProfile the backlog relay into this file")
    parser.add_argument("--json", dest="json_path", help="also write the figures here")
    args = parser.parse_args()

    from tests.kafka_broker import TansuBroker
    from tests.services import postgres_schema

    from tailrace.engine.store.postgres.store import PostgresStore

    figures: dict[str, Any] = {
        "events": args.events,
        "keys": KEYS,
        "machine": f"{platform.machine()}, {multiprocessing.cpu_count()} cores, "
        f"Python {platform.python_version()}",
    }
    with tempfile.TemporaryDirectory() as workdir, TansuBroker(Path(workdir)) as broker:
        broker.create_topic("bare", partitions=3)
        figures["bare_loop"] = bare_rate(broker.bootstrap, args.events)
        for relays in (int(n) for n in args.relays.split(",")):
            for mode in ("backlog", "live"):
                with postgres_schema() as url:
                    store = PostgresStore(url)
                    store.migrate()
                    store.close()
                    profile = args.profile and mode == "backlog" and relays == 1
                    profiler = cProfile.Profile() if profile else None
                    if profiler:
                        profiler.enable()
                    topic = broker_topic(broker, mode, relays)
                    figures[f"{mode}, {relays} relay(s)"] = relay_rate(
                        url, broker.bootstrap, topic, args.events, relays, mode == "live"
                    )
                    if profiler:
                        profiler.disable()
                        profiler.dump_stats(args.profile)
    for name, value in figures.items():
        if isinstance(value, float):
            print(f"{name:>22}: {value:>10,.0f} events/s")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
