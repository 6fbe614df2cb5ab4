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

import psycopg
from oban import Job, Oban, worker
from oban.schema import install

import _common as c

DB = "bench_oban"
LIMIT = int(os.environ.get("BENCH_OBAN_LIMIT", "10"))
DSN_URL = "postgresql://postgres@127.0.0.1:5432/" + DB

_notify_conn: psycopg.AsyncConnection | None = None


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


async def _bulk(oban: Oban, n: int) -> None:
    await oban.enqueue_many(_job("Noop") for _ in range(n))


async def _rate(n: int, make: object) -> float:
    t0 = time.perf_counter()
    await make  # type: ignore[misc]
    return n / (time.perf_counter() - t0)


async def run(sizes: c.Sizes) -> dict[str, object]:
    pool = await Oban.create_pool(DSN_URL, min_size=1, max_size=4)
    db = await psycopg.AsyncConnection.connect(DSN_URL, autocommit=True)
    try:
        await install(pool)
        async with Oban(pool=pool) as oban:

            async def single(n: int) -> None:
                for _ in range(n):
                    await oban.enqueue(_job("Noop"))

            c.log("oban: single enqueue")
            single_rate = await _rate(sizes.single, single(sizes.single))
            await db.execute("TRUNCATE oban_jobs")
            c.log("oban: bulk enqueue")
            bulk_rate = await _rate(sizes.bulk, _bulk(oban, sizes.bulk))
            await db.execute("TRUNCATE oban_jobs")
            await _bulk(oban, sizes.jobs)

            cmds = [
                [sys.executable, "-m", "oban", "start", "--dsn", DSN_URL, "--queues",
                 f"default:{LIMIT}", "--node", f"bench{i}", "--log-level", "WARNING",
                 "--cron-modules", "oban_pg"]
                for i in range(2)
            ]
            await db.execute(f"LISTEN {c.PICKUP_CHANNEL}")
            c.log(f"oban: throughput, {sizes.jobs} jobs")
            # The polling helpers in _common are synchronous; run them in a
            # thread with a sync connection so this loop stays free.
            with psycopg.connect(DSN_URL, autocommit=True) as sync_db, c.workers(cmds) as procs:

                def count_done() -> int:
                    row = sync_db.execute(
                        "SELECT count(*) FILTER (WHERE state = 'completed'),"
                        " count(*) FILTER (WHERE state IN ('discarded', 'cancelled', 'retryable'))"
                        " FROM oban_jobs"
                    ).fetchone()
                    assert row is not None
                    if row[1]:
                        raise RuntimeError("a job failed")
                    return int(row[0])

                worked = await asyncio.to_thread(c.wait_done, procs, sizes.jobs, count_done)
                c.log("oban: pickup")
                loop = asyncio.get_running_loop()

                def enqueue_stamp() -> None:
                    asyncio.run_coroutine_threadsafe(oban.enqueue(_job("Stamp")), loop).result()

                def wait_stamp(timeout: float) -> float:
                    async def one() -> float:
                        async for note in db.notifies(timeout=timeout, stop_after=1):
                            return float(note.payload)
                        raise TimeoutError("no pickup stamp")

                    return asyncio.run_coroutine_threadsafe(one(), loop).result()

                pickup = await asyncio.to_thread(c.measure_pickup, procs, enqueue_stamp, wait_stamp, sizes)
        server = db.info.parameter_status("server_version") or "?"
    finally:
        await db.close()
        await pool.close()
    return {"single": single_rate, "bulk": bulk_rate, "worked": worked, "pickup": pickup,
            "server": server}


def main() -> None:
    import oban

    sizes = c.parse_sizes(__doc__ or "", jobs=10_000)
    c.pg_recreate_database(DB)
    try:
        out = asyncio.run(run(sizes))
    finally:
        c.pg_recreate_database(DB, drop_only=True)
    c.emit(c.result(
        "oban", f"postgresql {out['server']}",
        f"oban {oban.__version__} on Python {sys.version.split()[0]}; 2 `oban start` processes, "
        f"queue default:{LIMIT} each, max_attempts=1, uvloop (oban's CLI default)",
        single_enqueue_jobs_s=round(float(out["single"]), 1),  # type: ignore[arg-type]
        bulk_enqueue_jobs_s=round(float(out["bulk"]), 1),  # type: ignore[arg-type]
        **out["worked"], **out["pickup"], jobs=sizes.jobs,  # type: ignore[arg-type]
        notes="needs Python >= 3.12 (run from /work/bench-venv-312); bulk = Oban.enqueue_many, which "
              "sends one INSERT per job inside one transaction; done-count = oban_jobs rows completed",
    ))


if __name__ == "__main__":
    main()
