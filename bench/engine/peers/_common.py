"""Helpers shared by the peer benchmarks in this folder.

Each peer script measures four things with no-op jobs, in this order:

* single enqueue: N calls of the peer's one-job API, each its own round trip;
* bulk enqueue: the peer's fastest many-jobs API for N jobs;
* worked throughput: N jobs are enqueued first, then two worker processes are
  started; the clock runs from spawning them until the peer's own state says
  every job is done (polled every few ms);
* pickup latency: with those workers now idle, one job at a time is enqueued
  after a random pause; the job records ``time.time()`` as its first act and
  hands it back (Redis list or PostgreSQL NOTIFY); latency is that stamp minus
  the ``time.time()`` taken just before the enqueue call.

Workers are the peers' own command-line workers, run as subprocesses in their
own session (process group), stopped with SIGTERM and, if still there after a
grace period, SIGKILL to the whole group.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PEERS_DIR = Path(__file__).resolve().parent
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/5")
PG_HOST_DSN = os.environ.get("BENCH_PG_DSN", "host=127.0.0.1 port=5432 user=postgres")
PICKUP_CHANNEL = "bench_pickup"
PICKUP_KEY = "bench:pickup"

# Pause before each pickup sample: long enough for the worker to go idle,
# random so that polling workers are not sampled at one phase of their loop.
PICKUP_GAP_S = (0.02, 0.08)

# Figures are only comparable on an otherwise idle machine: each result carries
# the 1-minute load average seen when its script started.
LOAD_AT_START = os.getloadavg()[0]


@dataclass
class Sizes:
    jobs: int
    bulk: int
    single: int
    samples: int
    warmup: int


def parse_sizes(description: str, *, jobs: int, bulk: int = 20_000, single: int = 2_000) -> Sizes:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--jobs", type=int, default=jobs, help="jobs for worked throughput")
    parser.add_argument("--bulk", type=int, default=bulk, help="jobs for bulk enqueue")
    parser.add_argument("--single", type=int, default=single, help="single enqueue calls")
    parser.add_argument("--samples", type=int, default=200, help="pickup samples")
    parser.add_argument("--warmup", type=int, default=20, help="pickup samples discarded")
    ns = parser.parse_args()
    return Sizes(ns.jobs, ns.bulk, ns.single, ns.samples, ns.warmup)


def pg_dsn(dbname: str) -> str:
    return f"{PG_HOST_DSN} dbname={dbname}"


def pg_recreate_database(dbname: str, *, drop_only: bool = False) -> None:
    """Drop (and unless drop_only, create again) a database of the bench's own."""
    import psycopg

    with psycopg.connect(pg_dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{dbname}"')


def rate(n: int, fn: Callable[[], object]) -> float:
    """Jobs per second for fn, which enqueues n jobs."""
    t0 = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t0)


def percentiles_ms(samples: Sequence[float]) -> tuple[float, float, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return round(cuts[49], 2), round(cuts[89], 2), round(cuts[98], 2)


@dataclass
class Workers:
    procs: list[subprocess.Popen[bytes]]
    logs: list[Path]
    started: float = field(default_factory=time.perf_counter)

    def check_alive(self) -> None:
        for proc, log in zip(self.procs, self.logs, strict=True):
            if proc.poll() is not None:
                tail = log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"worker {proc.args!r} exited with {proc.returncode}:\n{tail}")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop(procs: Sequence[subprocess.Popen[bytes]], grace_s: float = 20.0) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    # Children (prefork / dramatiq processes) share the leader's group.
    while time.monotonic() < deadline and any(_group_alive(p.pid) for p in procs):
        time.sleep(0.05)
    for proc in procs:
        if _group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@contextmanager
def workers(cmds: Sequence[Sequence[str]], env: dict[str, str] | None = None) -> Iterator[Workers]:
    """Start one subprocess per command (cwd and PYTHONPATH: this folder)."""
    logdir = Path(tempfile.mkdtemp(prefix="peer-bench-"))
    full_env = {**os.environ, **(env or {}), "PYTHONPATH": str(PEERS_DIR)}
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []
    started = time.perf_counter()
    try:
        for i, cmd in enumerate(cmds):
            log = logdir / f"worker{i}.log"
            with log.open("wb") as out:
                procs.append(
                    subprocess.Popen(
                        list(cmd),
                        cwd=PEERS_DIR,
                        env=full_env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        start_new_session=True,
                    )
                )
            logs.append(log)
        yield Workers(procs, logs, started)
    finally:
        _stop(procs)


def wait_done(
    pool: Workers, n: int, count_done: Callable[[], int], timeout_s: float = 150.0
) -> dict[str, float]:
    """Poll count_done until it reaches n; return throughput figures."""
    first: float | None = None
    deadline = time.perf_counter() + timeout_s
    while True:
        done = count_done()
        now = time.perf_counter()
        if done and first is None:
            first = now
        if done >= n:
            break
        if now > deadline:
            raise TimeoutError(f"only {done}/{n} jobs done after {timeout_s}s")
        pool.check_alive()
        time.sleep(0.005)
    total = now - pool.started
    assert first is not None
    return {
        "throughput_jobs_s": round(n / total, 1),
        "throughput_seconds": round(total, 2),
        "first_job_after_s": round(first - pool.started, 2),
        "throughput_after_first_job_jobs_s": round(n / max(now - first, 1e-9), 1),
    }


def redis_stamp_waiter(client: Any) -> Callable[[float], float]:
    """wait_stamp for jobs that RPUSH their start time to PICKUP_KEY."""

    def wait_stamp(timeout: float) -> float:
        got = client.blpop([PICKUP_KEY], timeout=timeout)
        if got is None:
            raise TimeoutError("no pickup stamp")
        return float(got[1])

    return wait_stamp


def pg_stamp_waiter(conn: Any) -> Callable[[float], float]:
    """wait_stamp for jobs that NOTIFY PICKUP_CHANNEL with their start time (conn LISTENs)."""

    def wait_stamp(timeout: float) -> float:
        for note in conn.notifies(timeout=timeout, stop_after=1):
            return float(note.payload)
        raise TimeoutError("no pickup stamp")

    return wait_stamp


def measure_pickup(
    pool: Workers,
    enqueue: Callable[[], object],
    wait_stamp: Callable[[float], float],
    sizes: Sizes,
) -> dict[str, float]:
    """Enqueue one stamping job at a time; wait_stamp(timeout) returns its start time."""
    rng = random.Random(1234)
    latencies: list[float] = []
    for i in range(sizes.warmup + sizes.samples):
        time.sleep(rng.uniform(*PICKUP_GAP_S))
        pool.check_alive()
        t0 = time.time()
        enqueue()
        started = wait_stamp(10.0)
        if i >= sizes.warmup:
            latencies.append((started - t0) * 1000.0)
    p50, p90, p99 = percentiles_ms(latencies)
    return {"pickup_p50_ms": p50, "pickup_p90_ms": p90, "pickup_p99_ms": p99}


def result(peer: str, store: str, settings: str, **figures: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "peer": peer,
        "store": store,
        "settings": settings,
        "throughput_jobs_s": None,
        "bulk_enqueue_jobs_s": None,
        "single_enqueue_jobs_s": None,
        "pickup_p50_ms": None,
        "pickup_p90_ms": None,
        "pickup_p99_ms": None,
        "notes": "",
        "loadavg_1m_at_start": round(LOAD_AT_START, 2),
    }
    out.update(figures)
    return out


def emit(obj: dict[str, Any]) -> None:
    print(json.dumps(obj), flush=True)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)
