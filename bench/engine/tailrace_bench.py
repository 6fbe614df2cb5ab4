"""tailrace's engine on PostgreSQL, measured the way bench/engine/peers measure the peers.

- worked throughput: N no-op jobs waiting in a paused queue, 2 worker processes started and
  ready, queue resumed; time until every job has succeeded.
- bulk enqueue: ``enqueue_many`` in batches (COPY), jobs/s, median of 3 rounds.
- single enqueue: one ``enqueue`` call (its own transaction, durable) at a time, jobs/s.
- pickup latency: an idle worker; one job enqueued at a time; latency = the job's start time
  (recorded by the job) minus the time just before ``enqueue`` was called.
- bloat: after the throughput run of N jobs (1,000,000 with --million), the size of the job
  table and its indexes, live and dead tuples, before and after pruning.

Usage: python bench/engine/tailrace_bench.py [--jobs 200000] [--million] > result.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from tailrace import App, JobSpec

HERE = Path(__file__).resolve().parent
BASE_URL = os.environ.get("BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
SCHEMA = "bench_tailrace"
URL = f"{BASE_URL}?options=-csearch_path%3D{SCHEMA}"


def reset_schema() -> None:
    with psycopg.connect(BASE_URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        conn.execute(f"CREATE SCHEMA {SCHEMA}")
    with App(URL) as app:
        app.store.migrate()


def unfinished(conn: psycopg.Connection[Any]) -> int:
    """Jobs not yet finished, counted through the partial indexes (cheap at any table size:
    counting the succeeded jobs instead would scan the table and slow the run it measures)."""
    row = conn.execute(
        "SELECT (SELECT count(*) FROM tailrace_jobs WHERE state IN ('pending', 'failed'))"
        " + (SELECT count(*) FROM tailrace_jobs WHERE state = 'running')"
    ).fetchone()
    return int(row[0])  # type: ignore[index]


def start_workers(
    n: int, concurrency: int, log: Path, env: dict[str, str], *extra: str
) -> list[subprocess.Popen[bytes]]:
    procs = []
    for i in range(n):
        out = open(log.with_suffix(f".{i}.log"), "wb")  # closed with the process
        procs.append(subprocess.Popen(
            [sys.executable, "-c", "from tailrace.cli import main; main()",
             "--app", "bench_app:app", "--log-level", "WARNING", "worker",
             "-c", str(concurrency), "--batch-size", "200", "--poll", "1", *extra],
            cwd=HERE, env={**os.environ, **env, "TAILRACE_DATABASE_URL": URL,
                           "PYTHONPATH": os.pathsep.join(
                               [str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])])},
            stdout=out, stderr=out,
        ))
    return procs


def wait_ready(app: App, procs: list[subprocess.Popen[bytes]]) -> None:
    """Every worker has connected and LISTENs once it shows in pg_stat_activity's LISTEN."""
    deadline = time.monotonic() + 30
    with psycopg.connect(BASE_URL, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE query = 'LISTEN tailrace_jobs'"
            ).fetchone()
            if row and row[0] >= len(procs):
                return
            time.sleep(0.05)
    raise RuntimeError("workers did not start")


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait(30)


def throughput(jobs: int, processes: int, concurrency: int, task: str) -> dict[str, Any]:
    reset_schema()
    with App(URL) as app:
        app.queue_pause("default")
        for start in range(0, jobs, 50_000):
            app.enqueue_many([JobSpec(task)] * min(50_000, jobs - start))
        with tempfile.TemporaryDirectory() as tmp:
            procs = start_workers(processes, concurrency, Path(tmp) / "w", {})
            try:
                wait_ready(app, procs)
                with psycopg.connect(URL, autocommit=True) as conn:
                    started = time.perf_counter()
                    app.queue_resume("default")
                    while unfinished(conn):
                        time.sleep(0.05)
                    elapsed = time.perf_counter() - started
                    row = conn.execute(
                        "SELECT count(*) FROM tailrace_jobs WHERE state = 'succeeded'"
                    ).fetchone()
                    assert row is not None and row[0] == jobs, f"{row} of {jobs} succeeded"
            finally:
                stop(procs)
    return {"jobs": jobs, "processes": processes, "concurrency": concurrency, "task": task,
            "seconds": round(elapsed, 3), "jobs_per_s": round(jobs / elapsed)}


def bulk_enqueue(jobs: int, batch: int, rounds: int = 3) -> dict[str, Any]:
    """Median of ``rounds``; the clock includes building the JobSpecs, as a caller would."""
    rates = []
    for _ in range(rounds):
        reset_schema()
        with App(URL) as app:
            app.store  # noqa: B018 - connect first
            started = time.perf_counter()
            for start in range(0, jobs, batch):
                end = min(jobs, start + batch)
                app.enqueue_many([JobSpec("noop", {"i": i}) for i in range(start, end)])
            elapsed = time.perf_counter() - started
        rates.append(round(jobs / elapsed))
    return {"jobs": jobs, "batch": batch, "jobs_per_s": round(statistics.median(rates)),
            "rounds": rates}


def single_enqueue(jobs: int) -> dict[str, Any]:
    reset_schema()
    with App(URL) as app:
        app.enqueue("noop")
        started = time.perf_counter()
        for i in range(jobs):
            app.enqueue("noop", {"i": i})
        elapsed = time.perf_counter() - started
    return {"jobs": jobs, "jobs_per_s": round(jobs / elapsed)}


def pickup_latency(samples: int, warmup: int = 20) -> dict[str, Any]:
    """As the peers measure it: a random 20-80 ms pause, enqueue one job, block until the job
    reports its start time; latency = start - the time just before enqueue was called."""
    reset_schema()
    rng = random.Random(1234)
    latencies: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "stamps.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.settimeout(10)
        procs = start_workers(1, 16, Path(tmp) / "w", {"BENCH_STAMP_SOCKET": path})
        try:
            with App(URL) as app:
                wait_ready(app, procs)
                for i in range(warmup + samples):
                    time.sleep(rng.uniform(0.02, 0.08))
                    before = time.time()
                    app.enqueue("stamp")
                    started = float(sock.recv(64))
                    if i >= warmup:
                        latencies.append((started - before) * 1000)
        finally:
            stop(procs)
            sock.close()
    lat = sorted(latencies)
    return {"samples": len(lat), "p50_ms": round(statistics.median(lat), 2),
            "p90_ms": round(lat[int(len(lat) * 0.9)], 2),
            "p99_ms": round(lat[int(len(lat) * 0.99)], 2), "max_ms": round(lat[-1], 2)}


def bloat(jobs: int) -> dict[str, Any]:
    """Run after a throughput run: how big the table is with ``jobs`` finished jobs in it."""
    query = """SELECT pg_total_relation_size('tailrace_jobs'), pg_relation_size('tailrace_jobs'),
                      n_live_tup, n_dead_tup
               FROM pg_stat_user_tables WHERE relname = 'tailrace_jobs' AND schemaname = %s"""
    with psycopg.connect(URL, autocommit=True) as conn:
        conn.execute("ANALYZE tailrace_jobs")
        total, heap, live, dead = conn.execute(query, (SCHEMA,)).fetchone()  # type: ignore[misc]
        conn.execute("DELETE FROM tailrace_jobs WHERE state = 'succeeded'")  # what pruning does
        # publish the DELETE's counts before VACUUM resets them, not after
        conn.execute("SELECT pg_stat_force_next_flush()")
        conn.execute("VACUUM tailrace_jobs")
        total2, heap2, live2, dead2 = conn.execute(query, (SCHEMA,)).fetchone()  # type: ignore[misc]
    mib = 1024 * 1024
    return {"jobs": jobs, "total_mib": round(total / mib, 1), "heap_mib": round(heap / mib, 1),
            "live_tuples": live, "dead_tuples": dead,
            "after_prune_and_vacuum": {"total_mib": round(total2 / mib, 1),
                                       "heap_mib": round(heap2 / mib, 1),
                                       "live_tuples": live2, "dead_tuples": dead2}}


def steady(jobs: int) -> dict[str, Any]:
    """A long run as in production: jobs keep arriving while 2 workers work them and prune
    what finished (retention 2 s); the job table's size is sampled every 100,000 jobs."""
    reset_schema()
    size_query = """SELECT pg_total_relation_size('tailrace_jobs'), n_live_tup, n_dead_tup
                    FROM pg_stat_user_tables WHERE relname = 'tailrace_jobs' AND schemaname = %s"""
    samples = []
    with tempfile.TemporaryDirectory() as tmp, App(URL) as app:
        procs = start_workers(2, 200, Path(tmp) / "w", {}, "--retention", "2",
                              "--prune-every", "2")
        try:
            wait_ready(app, procs)
            started = time.perf_counter()
            with psycopg.connect(URL, autocommit=True) as conn:
                sent = 0
                while sent < jobs:
                    if unfinished(conn) < 20_000:  # a backlog, never an ever-growing one
                        app.enqueue_many([JobSpec("noop")] * 5_000)
                        sent += 5_000
                        if sent % 100_000 == 0:
                            total, live, dead = conn.execute(size_query, (SCHEMA,)).fetchone()  # type: ignore[misc]
                            samples.append({"jobs": sent, "total_mib": round(total / 2**20, 1),
                                            "live_tuples": live, "dead_tuples": dead})
                    else:
                        time.sleep(0.01)
                while unfinished(conn):
                    time.sleep(0.05)
                elapsed = time.perf_counter() - started
        finally:
            stop(procs)
    return {"jobs": jobs, "seconds": round(elapsed, 1), "jobs_per_s": round(jobs / elapsed),
            "table_every_100k": samples}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=200_000)
    parser.add_argument("--million", action="store_true", help="also the 1M-job bloat run")
    parts = ["throughput", "bulk", "single", "latency", "steady", "million"]
    parser.add_argument("--only", choices=parts)
    args = parser.parse_args()
    result: dict[str, Any] = {"peer": "tailrace", "store": "postgresql"}
    if args.only in (None, "throughput"):
        result["throughput"] = throughput(args.jobs, 2, 200, "noop")
        result["throughput_sync_task"] = throughput(args.jobs // 2, 2, 200, "noop_sync")
    if args.only in (None, "bulk"):
        result["bulk_enqueue"] = bulk_enqueue(200_000, 10_000)
    if args.only in (None, "single"):
        result["single_enqueue"] = single_enqueue(2_000)
    if args.only in (None, "latency"):
        result["pickup_latency"] = pickup_latency(200)
    if args.million or args.only == "million":
        result["million"] = throughput(1_000_000, 2, 200, "noop")
        result["million"]["table"] = bloat(1_000_000)
    if args.million or args.only in ("steady", "million"):
        result["steady"] = steady(1_000_000)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
