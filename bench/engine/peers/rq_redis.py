"""RQ on Redis: enqueue rates, worked throughput and pickup latency.

Measured as described in _common.py. Done-count is RQ's own
FinishedJobRegistry (a failed job aborts the run). Bulk enqueue is
``Queue.enqueue_many`` (one Redis pipeline). Workers: 2 ``rq worker``
processes with ``SimpleWorker`` (no fork per job).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import _common as c
import redis
import rq
from rq import Queue
from rq.registry import FailedJobRegistry, FinishedJobRegistry

QUEUE = "bench"

_client: redis.Redis | None = None


def _redis() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(c.REDIS_URL)
    return _client


def noop() -> None:
    pass


def stamp() -> None:
    started = time.time()
    _redis().rpush(c.PICKUP_KEY, repr(started))


def stamp_via(q: Queue) -> Callable[[], object]:
    return lambda: q.enqueue("rq_redis.stamp")


def main() -> None:
    sizes = c.parse_sizes(__doc__ or "", jobs=12_000)
    r = _redis()
    q = Queue(QUEUE, connection=r)
    r.flushdb()

    def bulk_enqueue(n: int) -> None:
        q.enqueue_many([Queue.prepare_data("rq_redis.noop") for _ in range(n)])

    c.log("rq: single enqueue")
    single = c.rate(sizes.single, lambda: [q.enqueue("rq_redis.noop") for _ in range(sizes.single)])
    r.flushdb()
    c.log("rq: bulk enqueue")
    bulk = c.rate(sizes.bulk, lambda: bulk_enqueue(sizes.bulk))
    r.flushdb()
    bulk_enqueue(sizes.jobs)
    finished = FinishedJobRegistry(queue=q)
    failed = FailedJobRegistry(queue=q)

    def count_done() -> int:
        if failed.count:
            raise RuntimeError("a job failed")
        return finished.count

    worker = [sys.executable, "-m", "rq.cli", "worker", "--url", c.REDIS_URL]
    options = ["--worker-class", "rq.worker.SimpleWorker", "--quiet"]
    cmds = [[*worker, *options, "--name", f"bench{i}", QUEUE] for i in range(2)]
    c.log(f"rq: throughput, {sizes.jobs} jobs")
    with c.workers(cmds) as pool:
        worked = c.wait_done(pool, sizes.jobs, count_done)
        c.log("rq: pickup")
        pickup = c.measure_pickup(pool, stamp_via(q), c.redis_stamp_waiter(r), sizes)
    r.flushdb()
    settings = (
        f"rq {rq.__version__}; 2 `rq worker` processes, {' '.join(options)} (no fork per job), "
        "default result_ttl"
    )
    notes = "bulk = Queue.enqueue_many (one pipeline); done-count = FinishedJobRegistry.count"
    store = f"redis {r.info()['redis_version']}"
    figures = {"single_enqueue_jobs_s": round(single, 1), "bulk_enqueue_jobs_s": round(bulk, 1)}
    c.emit(
        c.result("rq", store, settings, **figures, **worked, **pickup, jobs=sizes.jobs, notes=notes)
    )


if __name__ == "__main__":
    try:
        main()
    finally:
        _redis().flushdb()  # also after a failed run
