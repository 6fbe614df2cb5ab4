"""RQ on Redis: enqueue rates, worked throughput and pickup latency.

Measured as described in _common.py. Done-count is RQ's own
FinishedJobRegistry (a failed job aborts the run). Bulk enqueue is
``Queue.enqueue_many`` (one Redis pipeline). Workers: 2 ``rq worker``
processes with ``SimpleWorker`` (no fork per job).
"""

from __future__ import annotations

import sys
import time

import redis
import rq
from rq import Queue
from rq.registry import FailedJobRegistry, FinishedJobRegistry

import _common as c

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

    cmds = [
        [sys.executable, "-m", "rq.cli", "worker", "--url", c.REDIS_URL, "--worker-class",
         "rq.worker.SimpleWorker", "--name", f"bench{i}", "--quiet", QUEUE]
        for i in range(2)
    ]
    c.log(f"rq: throughput, {sizes.jobs} jobs")
    with c.workers(cmds) as pool:
        worked = c.wait_done(pool, sizes.jobs, count_done)
        c.log("rq: pickup")

        def wait_stamp(timeout: float) -> float:
            got = r.blpop([c.PICKUP_KEY], timeout=timeout)
            if got is None:
                raise TimeoutError("no pickup stamp")
            return float(got[1])

        pickup = c.measure_pickup(pool, lambda: q.enqueue("rq_redis.stamp"), wait_stamp, sizes)
    r.flushdb()
    c.emit(c.result(
        "rq", f"redis {r.info()['redis_version']}",
        f"rq {rq.__version__}; 2 `rq worker` processes, --worker-class rq.worker.SimpleWorker (no fork), "
        "--quiet, default result_ttl",
        single_enqueue_jobs_s=round(single, 1), bulk_enqueue_jobs_s=round(bulk, 1),
        **worked, **pickup, jobs=sizes.jobs,
        notes="bulk = Queue.enqueue_many (one pipeline); done-count = FinishedJobRegistry.count",
    ))


if __name__ == "__main__":
    main()
