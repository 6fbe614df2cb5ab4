"""Oban for Python on PostgreSQL: enqueue rates, worked throughput and pickup latency.

Measured as described in _common.py, in a database of its own (``bench_oban``,
dropped and created again around the run). Oban needs Python >= 3.12, so this
script runs from a 3.12 virtualenv (see run_all.py). Done-count is Oban's own
job table (``state = 'completed'``). Bulk enqueue is ``Oban.enqueue_many``;
single enqueue is ``Oban.enqueue``. Workers: 2 ``oban start`` processes.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable
from typing import Any

import _common as c
import oban
import psycopg
from oban import Job, Oban, worker
from oban.schema import install

DB = "bench_oban"
LIMIT = int(os.environ.get("BENCH_OBAN_LIMIT", "10"))
DSN_URL = "postgresql://postgres@127.0.0.1:5432/" + DB

_notify_conn: psycopg.AsyncConnection[Any] | None = None


@worker(queue="default", max_attempts=1)
class Noop:
    async def process(self, job: Job) -> None:
        return None


@worker(queue="default", max_attempts=1)
class Stamp:
    async def process(self, job: Job) -> None:
        global _notify_conn
        started = time.time()
        if _notify_conn is None:
            _notify_conn = await psycopg.AsyncConnection.connect(DSN_URL, autocommit=True)
        await _notify_conn.execute("SELECT pg_notify(%s, %s)", (c.PICKUP_CHANNEL, repr(started)))


def _job(name: str) -> Job:
    # Named explicitly: run as a script, this module is __main__, but the
    # workers import it as oban_pg.
    return Job(f"oban_pg.{name}", args={}, queue="default", max_attempts=1)


async def _bulk(client: Oban, n: int) -> None:
    await client.enqueue_many(_job("Noop") for _ in range(n))


async def _rate(n: int, work: Awaitable[object]) -> float:
    t0 = time.perf_counter()
    await work
    return n / (time.perf_counter() - t0)


COUNT_SQL = """
    SELECT count(*) FILTER (WHERE state = 'completed'),
           count(*) FILTER (WHERE state IN ('discarded', 'cancelled', 'retryable'))
    FROM oban_jobs
"""


async def run(sizes: c.Sizes, db: psycopg.Connection[Any]) -> dict[str, Any]:
    """Enqueue with an async Oban client; poll and listen on db (sync) from a thread."""
    pool = await Oban.create_pool(DSN_URL, min_size=1, max_size=4)
    try:
        await install(pool)
        async with Oban(pool=pool) as client:

            async def single(n: int) -> None:
                for _ in range(n):
                    await client.enqueue(_job("Noop"))

            c.log("oban: single enqueue")
            single_rate = await _rate(sizes.single, single(sizes.single))
            db.execute("TRUNCATE oban_jobs")
            c.log("oban: bulk enqueue")
            bulk_rate = await _rate(sizes.bulk, _bulk(client, sizes.bulk))
            db.execute("TRUNCATE oban_jobs")
            await _bulk(client, sizes.jobs)

            def count_done() -> int:
                completed, failed = db.execute(COUNT_SQL).fetchone() or (0, 0)
                if failed:
                    raise RuntimeError("a job failed")
                return int(completed)

            worker = [sys.executable, "-m", "oban", "start", "--dsn", DSN_URL, "--log-level"]
            options = ["WARNING", "--queues", f"default:{LIMIT}", "--cron-modules", "oban_pg"]
            cmds = [[*worker, *options, "--node", f"bench{i}"] for i in range(2)]
            db.execute(f"LISTEN {c.PICKUP_CHANNEL}")
            c.log(f"oban: throughput, {sizes.jobs} jobs")
            with c.workers(cmds) as procs:
                worked = await asyncio.to_thread(c.wait_done, procs, sizes.jobs, count_done)
                c.log("oban: pickup")
                loop = asyncio.get_running_loop()

                def enqueue_stamp() -> None:
                    asyncio.run_coroutine_threadsafe(client.enqueue(_job("Stamp")), loop).result()

                waiter = c.pg_stamp_waiter(db)
                pickup = await asyncio.to_thread(
                    c.measure_pickup, procs, enqueue_stamp, waiter, sizes
                )
    finally:
        await pool.close()
    return {"single": single_rate, "bulk": bulk_rate, "worked": worked, "pickup": pickup}


def main() -> None:
    sizes = c.parse_sizes(__doc__ or "", jobs=20_000)
    c.pg_recreate_database(DB)
    try:
        with psycopg.connect(DSN_URL, autocommit=True) as db:
            out = asyncio.run(run(sizes, db))
            server = db.info.parameter_status("server_version") or "?"
    finally:
        c.pg_recreate_database(DB, drop_only=True)
    settings = (
        f"oban {oban.__version__} on Python {sys.version.split()[0]}; 2 `oban start` processes, "
        f"queue default:{LIMIT} each, max_attempts=1, uvloop (oban's CLI default)"
    )
    notes = (
        "needs Python >= 3.12 (runs from bench/.venvs/peers-312); bulk = Oban.enqueue_many, which "
        "sends one INSERT per job in one transaction; done-count = oban_jobs rows completed"
    )
    figures = {
        "single_enqueue_jobs_s": round(out["single"], 1),
        "bulk_enqueue_jobs_s": round(out["bulk"], 1),
    }
    c.emit(
        c.result(
            "oban",
            f"postgresql {server}",
            settings,
            **figures,
            **out["worked"],
            **out["pickup"],
            jobs=sizes.jobs,
            notes=notes,
        )
    )


if __name__ == "__main__":
    main()
