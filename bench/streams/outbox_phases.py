"""Where one outbox relay's time goes: wall seconds per phase while it drains a backlog.

The loop thread waits for the broker's reports (`wait`) and hands batches to the producer
(`send`); the database thread marks the last batch (`_mark`) and claims the next
(`_claim`), both inside `_step`. `_round` is the loop thread's total: when `_step` comes
close to it, the database is the bottleneck.

    python bench/streams/outbox_phases.py [--events 100000] [--batch 5000]
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))

SPENT: collections.Counter[str] = collections.Counter()


def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            SPENT[name] += time.perf_counter() - started

    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=5_000)
    args = parser.parse_args()

    import outbox as bench  # bench/streams/outbox.py: the same events and writer
    from tests.kafka_broker import TansuBroker
    from tests.services import postgres_schema

    from tailrace.streams.outbox import publish as outbox_publish
    from tailrace.streams.outbox import relay

    for name in ("_mark", "_claim", "_step", "_round"):
        setattr(relay.Relay, name, timed(name, getattr(relay.Relay, name)))
    for name in ("send", "wait"):
        publisher = outbox_publish.BatchPublisher
        setattr(publisher, name, timed(name, getattr(publisher, name)))

    with tempfile.TemporaryDirectory() as workdir, TansuBroker(Path(workdir)) as broker:
        broker.create_topic("phases", partitions=3)
        with postgres_schema() as url:
            bench.migrate(url)
            bench.write_events(url, "phases", 0, args.events)
            settings = relay.RelaySettings(batch_size=args.batch)
            with relay.Relay(url, broker.bootstrap, settings) as running:
                started = time.perf_counter()
                while running.stats.published < args.events:
                    running.run_once()
                elapsed = time.perf_counter() - started
    print(f"{args.events / elapsed:,.0f} events/s ({elapsed:.2f} s, batches of {args.batch:,})")
    for name, seconds in SPENT.most_common():
        print(f"  {name:>7}: {seconds:6.2f} s")


if __name__ == "__main__":
    main()
