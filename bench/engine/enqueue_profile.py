"""Where bulk enqueue's time goes on PostgreSQL: the client, the server, and a bare COPY.

Each variant writes the same 200,000 jobs in transactions of 10,000 and reports its wall-clock
rate plus the CPU seconds of the client (this process) and of the server (the PostgreSQL
backend, read from /proc), so that a loaded machine still shows which side does the work.

- ``enqueue_many``: the real path (JobSpecs built, resolved, encoded, COPY in binary).
- ``table binary``: the same rows, encoded beforehand, COPYed into the job table: the
  server's share alone.
- ``table text``: as before, in COPY's text format (what enqueue sent before binary).
- ``table binary, as before engine/0005``: with the (queue, sort_at, id) index of waiting
  jobs, which no statement read, put back: what that migration saves.
- ``table, no claim index``: the binary COPY with the (sort_at, id) claim index dropped:
  what the claim's index costs; ``no state index`` the dashboard's (state, id) index,
  ``no trigger`` the statement-level NOTIFY trigger.
- ``table, primary key only``: every other index and the trigger dropped: the heap, the
  primary key, parsing and defaults; ``primary key + claim`` (``+ state``) adds that one
  index back, so each index's own cost reads against this floor.
- ``--kept N``: the job table holds N succeeded jobs (ids below the new ones) before each
  variant, as a table that keeps finished jobs does: a waiting job's entry in the (state, id)
  index then lands before theirs rather than at the end of the index.
- ``bare COPY``: text rows into a table of the same columns without keys, indexes,
  constraints or defaults (args as text): the floor.

Median of ``--rounds`` rounds. Usage: python bench/engine/enqueue_profile.py > profile.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg

from tailrace import App, JobSpec
from tailrace.engine.jobs import JobBatch
from tailrace.engine.store.postgres import store as pg_store

BASE_URL = os.environ.get("BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
SCHEMA = "bench_enqueue_profile"
URL = f"{BASE_URL}?options=-csearch_path%3D{SCHEMA}"
COLUMNS = "id, args, queue, task, priority, run_at, sort_at, max_attempts, timeout_s"
BARE_TABLE = """CREATE TABLE bare (id bigint, args text, queue text, task text,
    priority smallint, run_at timestamptz, sort_at timestamptz, max_attempts integer,
    timeout_s double precision)"""


# Every index of the job table but its primary key (the 0001 and 0002 engine migrations).
SECONDARY = (
    "tailrace_jobs_claim",
    "tailrace_jobs_state_id",
    "tailrace_jobs_lease",
    "tailrace_jobs_finished",
    "tailrace_jobs_dead",
    "tailrace_jobs_dedup_live",
    "tailrace_jobs_dedup",
)
# dropped by engine/0005: no statement read it
QUEUE_CLAIM = """CREATE INDEX tailrace_jobs_claim_queue ON tailrace_jobs (queue, sort_at, id)
    WHERE state IN ('pending', 'failed')"""
NO_TRIGGER = "DROP TRIGGER tailrace_jobs_inserted ON tailrace_jobs"


def primary_key_and(*keep: str) -> tuple[str, ...]:
    """The statements that leave the job table with its primary key and ``keep`` only."""
    return (NO_TRIGGER, *(f"DROP INDEX {name}" for name in SECONDARY if name not in keep))


def kept_jobs(n: int) -> tuple[str, ...]:
    """The statements that fill the job table with ``n`` succeeded jobs, ids -n to -1."""
    if not n:
        return ()
    return (
        "INSERT INTO tailrace_jobs (id, task, state, finished_at) "
        f"SELECT -g, 'noop', 'succeeded', now() FROM generate_series(1, {n}) AS g",
        "VACUUM ANALYZE tailrace_jobs",
    )


def reset(*statements: str) -> None:
    with psycopg.connect(BASE_URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        conn.execute(f"CREATE SCHEMA {SCHEMA}")
    with App(URL) as app:
        app.store.migrate()
    with psycopg.connect(URL, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement.encode())


def backend_cpu(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(pid: int, work: Callable[[], None]) -> dict[str, float]:
    server, client, wall = backend_cpu(pid), time.process_time(), time.perf_counter()
    work()
    wall = time.perf_counter() - wall
    return {
        "wall_s": wall,
        "client_cpu_s": time.process_time() - client,
        "server_cpu_s": backend_cpu(pid) - server,
    }


def via_enqueue_many(jobs: int, batch: int, *setup: str) -> dict[str, float]:
    reset(*setup)
    with App(URL) as app:
        pid = app.store._run(lambda c: c.execute("SELECT pg_backend_pid()").fetchone()[0])

        def work() -> None:
            for start in range(0, jobs, batch):
                end = min(jobs, start + batch)
                app.enqueue_many([JobSpec("noop", {"i": i}) for i in range(start, end)])

        return measured(pid, work)


def encoded(jobs: int, batch: int, binary: bool) -> list[bytes]:
    """The rows enqueue_many would send, per transaction, encoded ahead of the clock."""
    app = App(URL)
    template = app.new_job("noop")
    now = template.run_at.isoformat()
    blobs = []
    for start in range(0, jobs, batch):
        ids = list(range(start + 1, min(jobs, start + batch) + 1))
        if binary:
            rows = JobBatch()
            for i in ids:
                rows.add(template, b'{"i":%d}' % i)
            sink = _Capture()
            pg_store._copy(sink, rows, ids)  # type: ignore[arg-type]
            blobs.append(b"".join(sink.chunks))
        else:
            line = '{}\t{{"i":{}}}\tdefault\tnoop\t2\t{}\t{}\t3\t\\N\n'
            blobs.append("".join(line.format(i, i, now, now) for i in ids).encode())
    return blobs


class _Capture:
    """A stand-in connection whose COPY keeps what it is given."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def cursor(self) -> _Capture:
        return self

    def copy(self, _sql: str) -> _Capture:
        return self

    def __enter__(self) -> _Capture:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def write(self, data: bytes | bytearray) -> None:
        self.chunks.append(bytes(data))


def via_copy(blobs: list[bytes], table: str, binary: bool, *setup: str) -> dict[str, float]:
    reset(*setup)
    sql = f"COPY {table} ({COLUMNS}) FROM STDIN" + (" (FORMAT binary)" if binary else "")
    with psycopg.connect(URL) as conn:
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        conn.commit()

        def work() -> None:
            for blob in blobs:
                with conn.transaction(), conn.cursor().copy(sql.encode()) as copy:
                    copy.write(blob)

        return measured(pid, work)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--kept", type=int, default=0, help="succeeded jobs already in the table")
    args = parser.parse_args()
    load_at_start = os.getloadavg()
    reset()
    binary = encoded(args.jobs, args.batch, binary=True)
    text = encoded(args.jobs, args.batch, binary=False)
    keep = kept_jobs(args.kept)
    variants: dict[str, Callable[[], dict[str, float]]] = {
        "enqueue_many": lambda: via_enqueue_many(args.jobs, args.batch, *keep),
        "table binary": lambda: via_copy(binary, "tailrace_jobs", True, *keep),
        "table text": lambda: via_copy(text, "tailrace_jobs", False, *keep),
        "table binary, as before engine/0005": lambda: via_copy(
            binary, "tailrace_jobs", True, *keep, QUEUE_CLAIM
        ),
        "table binary, no claim index": lambda: via_copy(
            binary, "tailrace_jobs", True, *keep, "DROP INDEX tailrace_jobs_claim"
        ),
        "table binary, no state index": lambda: via_copy(
            binary, "tailrace_jobs", True, *keep, "DROP INDEX tailrace_jobs_state_id"
        ),
        "table binary, no trigger": lambda: via_copy(
            binary, "tailrace_jobs", True, *keep, NO_TRIGGER
        ),
        "table binary, primary key only": lambda: via_copy(
            binary, "tailrace_jobs", True, *keep, *primary_key_and()
        ),
        "table binary, primary key + claim": lambda: via_copy(
            binary, "tailrace_jobs", True, *keep, *primary_key_and("tailrace_jobs_claim")
        ),
        "table binary, primary key + state": lambda: via_copy(
            binary, "tailrace_jobs", True, *keep, *primary_key_and("tailrace_jobs_state_id")
        ),
        "bare COPY": lambda: via_copy(text, "bare", False, BARE_TABLE),
    }
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    for _ in range(args.rounds):  # interleaved: a load spike hits every variant alike
        for name, run in variants.items():
            runs[name].append(run())
    result: dict[str, Any] = {
        "measured_at": f"{datetime.now(UTC):%Y-%m-%d %H:%M}",
        "jobs": args.jobs,
        "batch": args.batch,
        "kept": args.kept,
        "rounds": args.rounds,
        "load_at_start": [round(x, 2) for x in load_at_start],
        "load_at_end": [round(x, 2) for x in os.getloadavg()],
    }
    for name, samples in runs.items():
        med = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
        result[name] = {
            "jobs_per_s": round(args.jobs / med["wall_s"]),
            "client_cpu_s": round(med["client_cpu_s"], 3),
            "server_cpu_s": round(med["server_cpu_s"], 3),
            "walls_s": [round(s["wall_s"], 2) for s in samples],
        }
        r = result[name]
        print(
            f"{name:40s} {r['jobs_per_s']:>9,}/s  client {r['client_cpu_s']:.2f} s"
            f"  server {r['server_cpu_s']:.2f} s CPU",
            file=sys.stderr,
        )
    reset()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
