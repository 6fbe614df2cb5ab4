"""Celery on Redis: enqueue rates, worked throughput and pickup latency.

Measured as described in _common.py. Celery keeps no record of finished tasks
without a result backend, so the no-op task INCRs one Redis counter and the
driver polls that counter to see when all jobs are done (one extra Redis round
trip per job, on the worker). Bulk enqueue is a ``group`` of signatures sent
with one ``apply_async``. Workers: 2 ``celery worker`` processes, thread pool.
"""

from __future__ import annotations

import os
import sys
import time

import _common as c
import celery
import redis
from celery import Celery, group

POOL = os.environ.get("BENCH_CELERY_POOL", "threads")
CONCURRENCY = int(os.environ.get("BENCH_CELERY_CONCURRENCY", "4"))
PREFETCH = int(os.environ.get("BENCH_CELERY_PREFETCH", "4"))
ACKS_LATE = os.environ.get("BENCH_CELERY_ACKS_LATE", "0") == "1"
LOGLEVEL = os.environ.get("BENCH_CELERY_LOGLEVEL", "WARNING")
DONE_KEY = "bench:done"

app = Celery("bench", broker=c.REDIS_URL)
app.conf.update(
    task_ignore_result=True,
    worker_prefetch_multiplier=PREFETCH,
    task_acks_late=ACKS_LATE,
    broker_connection_retry_on_startup=True,
)

_client: redis.Redis | None = None


def _redis() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(c.REDIS_URL)
    return _client


@app.task(name="bench.noop")
def noop() -> None:
    _redis().incr(DONE_KEY)


@app.task(name="bench.stamp")
def stamp() -> None:
    started = time.time()
    _redis().rpush(c.PICKUP_KEY, repr(started))


def _bulk(n: int) -> None:
    group(noop.s() for _ in range(n)).apply_async()


def main() -> None:
    sizes = c.parse_sizes(__doc__ or "", jobs=20_000)
    r = _redis()
    r.flushdb()
    c.log("celery: single enqueue")
    single = c.rate(sizes.single, lambda: [noop.delay() for _ in range(sizes.single)])
    r.flushdb()
    c.log("celery: bulk enqueue")
    bulk = c.rate(sizes.bulk, lambda: _bulk(sizes.bulk))
    r.flushdb()
    _bulk(sizes.jobs)
    worker = [sys.executable, "-m", "celery", "-A", "celery_redis", "worker"]
    options = [f"--pool={POOL}", f"--concurrency={CONCURRENCY}", f"--loglevel={LOGLEVEL}"]
    quiet = ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    cmds = [[*worker, *options, *quiet, f"--hostname=bench{i}@%h"] for i in range(2)]
    c.log(f"celery: throughput, {sizes.jobs} jobs")
    with c.workers(cmds) as pool:
        worked = c.wait_done(pool, sizes.jobs, lambda: int(r.get(DONE_KEY) or 0))
        c.log("celery: pickup")
        pickup = c.measure_pickup(pool, stamp.delay, c.redis_stamp_waiter(r), sizes)
    r.flushdb()
    acks = "acks late" if ACKS_LATE else "acks early (default)"
    settings = (
        f"celery {celery.__version__}; 2 `celery worker` processes, {' '.join(options)}, "
        f"prefetch multiplier {PREFETCH}, {acks}, no result backend, {' '.join(quiet)}"
    )
    notes = (
        "done-count: the task INCRs a Redis key (Celery keeps no completion record without a "
        "result backend); bulk = group(...).apply_async(), still one message per job"
    )
    store = f"redis {r.info()['redis_version']}"
    figures = {"single_enqueue_jobs_s": round(single, 1), "bulk_enqueue_jobs_s": round(bulk, 1)}
    c.emit(
        c.result(
            "celery", store, settings, **figures, **worked, **pickup, jobs=sizes.jobs, notes=notes
        )
    )


if __name__ == "__main__":
    try:
        main()
    finally:
        _redis().flushdb()  # also after a failed run
