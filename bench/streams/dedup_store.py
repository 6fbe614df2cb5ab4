"""The PostgreSQL dedup store alone, per id: wall time, the server's CPU (the backend's, from
/proc: a loaded machine distorts it far less than the clock) and this client's CPU.

    python bench/streams/dedup_store.py [--ids 100000] [--rounds 3]

Each round writes `--ids` fresh ids in slices of 1,000, as the consumer does with a no-op
handler and the default checkpoint: a take of the slice and four checkpoints' done offsets.
Run with ``PYTHONPATH`` pointing at an older checkout (before ids were taken with their
position) it measures that version's calls instead: a look-up and four marks of 250.
Needs PostgreSQL (`TAILRACE_TEST_POSTGRES`); the run uses a schema of its own and drops it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from typing import Any

import psycopg

from tailrace.streams.dedup import PostgresDedup

PG_URL = os.environ.get("TAILRACE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
SLICE, CHECKPOINT = 1000, 250


def backend_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_round(count: int) -> tuple[float, float, float]:
    schema = f"bench_dedup_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}".encode())
    try:
        store: Any = PostgresDedup(f"{PG_URL}?options=-csearch_path%3D{schema}", "g", 86400)
        pid = store._connection().run(lambda c: c.execute("SELECT pg_backend_pid()").fetchone()[0])
        ids = [uuid.UUID(int=i).hex for i in range(count)]
        server, client, wall = backend_cpu(pid), time.process_time(), time.perf_counter()
        for start in range(0, count, SLICE):
            chunk = ids[start : start + SLICE]
            if hasattr(store, "take"):
                store.take("t", [(m, 0, start + k) for k, m in enumerate(chunk)])
                for k in range(0, SLICE, CHECKPOINT):
                    store.done("t", {0: start + k + CHECKPOINT})
            else:  # the version before: look up, then mark
                store.seen(chunk)
                for k in range(0, SLICE, CHECKPOINT):
                    store.mark(chunk[k : k + CHECKPOINT])
        wall = time.perf_counter() - wall
        result = (wall, backend_cpu(pid) - server, time.process_time() - client)
        store.close()
        return tuple(1e6 * x / count for x in result)  # type: ignore[return-value]
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE".encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ids", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    rounds = [one_round(args.ids) for _ in range(args.rounds)]
    walls, servers, clients = zip(*rounds, strict=True)
    print(f"load at start: {load}; at end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for name, values in (("wall", walls), ("server CPU", servers), ("client CPU", clients)):
        low, high = min(values), max(values)
        print(f"{name}: median {statistics.median(values):.1f} µs/id ({low:.1f} to {high:.1f})")


if __name__ == "__main__":
    main()
