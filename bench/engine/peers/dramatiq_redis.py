"""Dramatiq on Redis: enqueue rates, worked throughput and pickup latency.

Measured as described in _common.py. Done-count comes from Dramatiq's own
Redis state: a message body stays in the queue's ``.msgs`` hash until the
worker acks it, so done = enqueued - HLEN(msgs) once nothing was dead-lettered.
Dramatiq has no batch enqueue (``group(...).run()`` enqueues message by
message); that is what the bulk figure uses. Workers: one ``dramatiq`` command
with 2 processes x 8 threads (its defaults).
"""

from __future__ import annotations

import os
import sys
import time

import _common as c
import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker

PROCESSES = 2
THREADS = int(os.environ.get("BENCH_DRAMATIQ_THREADS", "8"))
QUEUE = "default"
MSGS_KEY = f"dramatiq:{QUEUE}.msgs"
DEAD_KEY = f"dramatiq:{QUEUE}.XQ.msgs"

broker = RedisBroker(url=c.REDIS_URL)
dramatiq.set_broker(broker)

_client: redis.Redis | None = None


def _redis() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(c.REDIS_URL)
    return _client


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def noop() -> None:
    pass


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def stamp() -> None:
    started = time.time()
    _redis().rpush(c.PICKUP_KEY, repr(started))


def _bulk(n: int) -> None:
    dramatiq.group(noop.message() for _ in range(n)).run()


def main() -> None:
    sizes = c.parse_sizes(__doc__ or "", jobs=30_000)
    r = _redis()
    r.flushdb()
    c.log("dramatiq: single enqueue")
    single = c.rate(sizes.single, lambda: [noop.send() for _ in range(sizes.single)])
    r.flushdb()
    c.log("dramatiq: bulk enqueue")
    bulk = c.rate(sizes.bulk, lambda: _bulk(sizes.bulk))
    r.flushdb()
    _bulk(sizes.jobs)

    def count_done() -> int:
        if r.hlen(DEAD_KEY):
            raise RuntimeError("a job was dead-lettered")
        return sizes.jobs - int(r.hlen(MSGS_KEY))

    cmd = [
        sys.executable,
        "-m",
        "dramatiq",
        "dramatiq_redis",
        "--processes",
        str(PROCESSES),
        "--threads",
        str(THREADS),
        "--queues",
        QUEUE,
    ]
    c.log(f"dramatiq: throughput, {sizes.jobs} jobs")
    with c.workers([cmd]) as pool:
        worked = c.wait_done(pool, sizes.jobs, count_done)
        c.log("dramatiq: pickup")
        pickup = c.measure_pickup(pool, stamp.send, c.redis_stamp_waiter(r), sizes)
    r.flushdb()
    settings = (
        f"dramatiq {dramatiq.__version__}; 1 `dramatiq` command, --processes {PROCESSES} "
        f"--threads {THREADS}, default middleware, max_retries=0, worker_timeout 1000 ms (default)"
    )
    notes = (
        "no batch enqueue API: bulk = dramatiq.group(...).run(), one Lua call per message (a plain "
        "send() loop is as fast); an idle Redis consumer polls with exponential backoff up to "
        "worker_timeout, so pickup latency grows with idle time (samples follow 20-80 ms pauses)"
    )
    store = f"redis {r.info()['redis_version']}"
    figures = {"single_enqueue_jobs_s": round(single, 1), "bulk_enqueue_jobs_s": round(bulk, 1)}
    c.emit(
        c.result(
            "dramatiq", store, settings, **figures, **worked, **pickup, jobs=sizes.jobs, notes=notes
        )
    )


if __name__ == "__main__":
    try:
        main()
    finally:
        _redis().flushdb()  # also after a failed run
