"""Procrastinate on PostgreSQL: enqueue rates, worked throughput and pickup latency.

Measured as described in _common.py, in a database of its own
(``bench_procrastinate``, dropped and created again around the run). Done-count
is Procrastinate's own job table (``status = 'succeeded'``). Bulk enqueue is
``Task.batch_defer`` (one INSERT for the batch); single enqueue is
``Task.defer``, each its own transaction. Workers: 2 ``procrastinate worker``
processes with async no-op tasks and LISTEN/NOTIFY on.
"""

from __future__ import annotations

import os
import sys
import time

import _common as c
import procrastinate
import psycopg

DB = "bench_procrastinate"
CONCURRENCY = int(os.environ.get("BENCH_PROCRASTINATE_CONCURRENCY", "10"))
BATCH = 5_000

app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=c.pg_dsn(DB)))

_notify_conn: psycopg.AsyncConnection | None = None


@app.task(name="noop")
async def noop() -> None:
    pass


@app.task(name="stamp")
async def stamp() -> None:
    global _notify_conn
    started = time.time()
    if _notify_conn is None:
        _notify_conn = await psycopg.AsyncConnection.connect(c.pg_dsn(DB), autocommit=True)
    await _notify_conn.execute("SELECT pg_notify(%s, %s)", (c.PICKUP_CHANNEL, repr(started)))


def _bulk(n: int) -> None:
    for start in range(0, n, BATCH):
        noop.batch_defer(*({} for _ in range(min(BATCH, n - start))))


COUNT_SQL = """
    SELECT count(*) FILTER (WHERE status = 'succeeded'),
           count(*) FILTER (WHERE status IN ('failed', 'aborted'))
    FROM procrastinate_jobs
"""


def main() -> None:
    sizes = c.parse_sizes(__doc__ or "", jobs=10_000)
    c.pg_recreate_database(DB)
    db = psycopg.connect(c.pg_dsn(DB), autocommit=True)
    try:
        with app.open():
            app.schema_manager.apply_schema()
            c.log("procrastinate: single enqueue")
            single = c.rate(sizes.single, lambda: [noop.defer() for _ in range(sizes.single)])
            db.execute("TRUNCATE procrastinate_jobs CASCADE")
            c.log("procrastinate: bulk enqueue")
            bulk = c.rate(sizes.bulk, lambda: _bulk(sizes.bulk))
            db.execute("TRUNCATE procrastinate_jobs CASCADE")
            _bulk(sizes.jobs)

            def count_done() -> int:
                succeeded, failed = db.execute(COUNT_SQL).fetchone() or (0, 0)
                if failed:
                    raise RuntimeError("a job failed")
                return int(succeeded)

            worker = [sys.executable, "-m", "procrastinate", "--app=procrastinate_pg.app", "worker"]
            cmds = [[*worker, f"--name=bench{i}", f"--concurrency={CONCURRENCY}"] for i in range(2)]
            c.log(f"procrastinate: throughput, {sizes.jobs} jobs")
            db.execute(f"LISTEN {c.PICKUP_CHANNEL}")
            with c.workers(cmds) as pool:
                worked = c.wait_done(pool, sizes.jobs, count_done)
                c.log("procrastinate: pickup")
                pickup = c.measure_pickup(pool, stamp.defer, c.pg_stamp_waiter(db), sizes)
        server = db.info.parameter_status("server_version") or "?"
    finally:
        db.close()
        c.pg_recreate_database(DB, drop_only=True)
    settings = (
        f"procrastinate {procrastinate.__version__}; 2 `procrastinate worker` processes, "
        f"--concurrency={CONCURRENCY} each, async tasks, listen/notify on, keeps finished jobs"
    )
    notes = (
        f"bulk = Task.batch_defer in batches of {BATCH}; done-count = procrastinate_jobs rows with "
        "status succeeded; throughput falls as the backlog grows (about 590/s for 2,000 jobs, "
        "300/s for 10,000 in trial runs)"
    )
    figures = {"single_enqueue_jobs_s": round(single, 1), "bulk_enqueue_jobs_s": round(bulk, 1)}
    c.emit(
        c.result(
            "procrastinate",
            f"postgresql {server}",
            settings,
            **figures,
            **worked,
            **pickup,
            jobs=sizes.jobs,
            notes=notes,
        )
    )


if __name__ == "__main__":
    main()
