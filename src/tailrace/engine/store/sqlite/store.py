"""The SQLite store: the embedded default. One file, several worker processes on one machine.

Writers serialise on ``BEGIN IMMEDIATE``; WAL lets readers run beside them; ``synchronous=FULL``
so a job is on disk before enqueue returns.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from ....db.migrations import migrate_sqlite, pending_sqlite
from ....db.queries import load_queries
from ....db.sqlite import connect as _connect
from ....db.sqlite import immediate, path_from_url
from ....errors import JobNotFoundError
from ...capacity import Limits, adding_by_queue
from ...jobs import ClaimedJob, Job, JobFilter, NewJob, Outcome, PoolInfo, QueueInfo, QueueStats
from ...states import JobState, Priority
from ..rows import claimed_from_row, filter_params, job_from_row, queue_infos
from .inspect import SqliteInspection

Q = load_queries(__package__ or "tailrace.engine.store.sqlite")


def _ts(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


class SqliteStore(SqliteInspection):
    def __init__(self, url: str) -> None:
        self.url = url
        self.path = path_from_url(url)
        self._conn = _connect(self.path)
        self._lock = threading.Lock()  # one connection, used from several threads

    def close(self) -> None:
        with self._lock:  # never under a statement another thread is running: that segfaults
            self._conn.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock, immediate(self._conn) as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._conn

    # -- schema -----------------------------------------------------------------------------

    def migrate(self) -> list[str]:
        """Apply every migration line's missing files (see `tailrace.db.migrations`)."""
        with self._write() as conn:
            return migrate_sqlite(conn)

    def migrations_pending(self) -> list[str]:
        with self._read() as conn:
            return pending_sqlite(conn)

    # -- enqueue ----------------------------------------------------------------------------

    def jobs_insert(
        self,
        jobs: Sequence[NewJob],
        connection: Any | None = None,
        default_caps: Mapping[Priority, int] | None = None,
    ) -> list[int]:
        if connection is not None:
            if not connection.in_transaction:
                connection.execute("BEGIN IMMEDIATE")
            connection.execute("SAVEPOINT tailrace_enqueue")
            try:
                ids = self._insert(connection, jobs, default_caps)
            except BaseException:
                connection.execute("ROLLBACK TO tailrace_enqueue")
                raise
            finally:
                connection.execute("RELEASE tailrace_enqueue")
            return ids
        with self._write() as conn:
            return self._insert(conn, jobs, default_caps)

    def _insert(
        self,
        conn: sqlite3.Connection,
        jobs: Sequence[NewJob],
        default_caps: Mapping[Priority, int] | None = None,
    ) -> list[int]:
        now = time.time()
        adding = adding_by_queue((j.queue, j.priority, 1) for j in jobs)
        for queue, counts in adding.items():  # BEGIN IMMEDIATE: nobody enqueues meanwhile
            limits = Limits.of(conn.execute(Q["queue_limits"], {"queue": queue}), default_caps)
            if limits:
                rows = conn.execute(Q["queue_depth_by_priority"], {"queue": queue})
                limits.check(queue, {int(p): n for p, n in rows}, counts)
        ids = []
        for job in jobs:
            if job.dedup_key is not None:
                existing = conn.execute(
                    Q["dedup_existing"],
                    {
                        "dedup_key": job.dedup_key,
                        "window_s": job.dedup_window_s,
                        "now": now,
                    },
                ).fetchone()
                if existing is not None:
                    ids.append(existing[0])
                    continue
            ids.append(
                conn.execute(
                    Q["job_insert"],
                    {
                        "queue": job.queue,
                        "task": job.task,
                        "args": job.args_json,
                        "priority": int(job.priority),
                        "run_at": _ts(job.run_at),
                        "sort_at": _ts(job.sort_at),
                        "now": now,
                        "max_attempts": job.max_attempts,
                        "timeout_s": job.timeout_s,
                        "dedup_key": job.dedup_key,
                    },
                ).fetchone()[0]
            )
        return ids

    # -- working ----------------------------------------------------------------------------

    def jobs_claim(
        self,
        worker_id: str,
        limit: int,
        lease_s: float,
        queues: Sequence[str] | None,
        priorities: Sequence[int],
        held: Sequence[int] = (),  # nothing to adopt: a local file loses no replies
        pool: str | None = None,
    ) -> list[ClaimedJob]:
        params = {
            "pool": pool,
            "worker_id": worker_id,
            "limit": limit,
            "lease_s": lease_s,
            "now": time.time(),
            "queues": orjson.dumps(list(queues)).decode() if queues else None,
            "priorities": orjson.dumps([int(p) for p in priorities]).decode(),
        }
        with self._write() as conn:
            rows = conn.execute(Q["jobs_claim"], params).fetchall()
        return sorted((claimed_from_row(r) for r in rows), key=lambda j: j.id)

    def jobs_finish(self, worker_id: str, outcomes: Sequence[Outcome]) -> int:
        now = time.time()
        ok = [o.job_id for o in outcomes if o.state is JobState.SUCCEEDED]
        other = [o for o in outcomes if o.state is not JobState.SUCCEEDED]
        count = 0
        with self._write() as conn:
            if ok:
                count += conn.execute(
                    Q["jobs_succeed"],
                    {
                        "ids": orjson.dumps(ok).decode(),
                        "worker_id": worker_id,
                        "now": now,
                    },
                ).rowcount
            for o in other:
                count += conn.execute(
                    Q["job_end"],
                    {
                        "id": o.job_id,
                        "worker_id": worker_id,
                        "now": now,
                        "state": o.state.value,
                        "error": orjson.dumps(o.error).decode() if o.error else None,
                        "retry_at": _ts(o.retry_at),
                        "sort_at": _ts(o.sort_at),
                        "max_attempts": o.max_attempts,
                    },
                ).rowcount
        return count

    def lease_renew(
        self, worker_id: str, job_ids: Sequence[int], lease_s: float
    ) -> tuple[set[int], set[int]]:
        with self._write() as conn:
            rows = conn.execute(
                Q["lease_renew"],
                {
                    "ids": orjson.dumps(list(job_ids)).decode(),
                    "worker_id": worker_id,
                    "lease_s": lease_s,
                    "now": time.time(),
                },
            ).fetchall()
        return {r[0] for r in rows}, {r[0] for r in rows if r[1]}

    def jobs_release(self, worker_id: str, job_ids: Sequence[int]) -> int:
        with self._write() as conn:
            return conn.execute(
                Q["jobs_release"],
                {
                    "ids": orjson.dumps(list(job_ids)).decode(),
                    "worker_id": worker_id,
                },
            ).rowcount

    def leases_reap(
        self, grace_s: float = 0.0, gap_s: float | None = None
    ) -> list[tuple[int, JobState]]:
        now = time.time()
        with self._write() as conn:
            rows = conn.execute(
                Q["leases_reap"],
                {
                    "now": now,
                    "now_iso": datetime.fromtimestamp(now, UTC).isoformat(),
                },
            ).fetchall()
        return [(r[0], JobState(r[1])) for r in rows]

    def listener(self) -> SqliteListener:
        return SqliteListener(self.path)

    # -- inspection and operations ----------------------------------------------------------

    def job_get(self, job_id: int) -> Job:
        with self._read() as conn:
            row = conn.execute(Q["job_get"], {"id": job_id}).fetchone()
        if row is None:
            raise JobNotFoundError(job_id)
        return job_from_row(row)

    def jobs_list(self, where: JobFilter, limit: int = 100, offset: int = 0) -> list[Job]:
        params = _filter(where)
        with self._read() as conn:
            rows = conn.execute(Q["jobs_list"], {**params, "limit": limit, "offset": offset})
            return [job_from_row(r) for r in rows.fetchall()]

    def job_cancel(self, job_id: int) -> Job:
        with self._write() as conn:
            row = conn.execute(Q["job_cancel"], {"id": job_id, "now": time.time()}).fetchone()
        if row is None:
            raise JobNotFoundError(job_id)
        return job_from_row(row)

    def jobs_replay(self, where: JobFilter, aging_s: float) -> int:
        params = {**_filter(where), "now": time.time(), "aging_s": aging_s}
        params["state"] = params["state"] or JobState.DEAD.value
        with self._write() as conn:
            return conn.execute(Q["jobs_replay"], params).rowcount

    def jobs_discard(self, where: JobFilter) -> int:
        params = _filter(where)
        params["state"] = params["state"] or JobState.DEAD.value
        with self._write() as conn:
            return conn.execute(Q["jobs_discard"], params).rowcount

    def jobs_prune(self, older_than_s: float, states: Sequence[JobState]) -> int:
        params = {
            "older_than_s": older_than_s,
            "now": time.time(),
            "states": orjson.dumps([s.value for s in states]).decode(),
        }
        total = 0
        while True:
            with self._write() as conn:
                n = conn.execute(Q["jobs_prune"], params).rowcount
            total += n
            if n < 10000:
                return total

    def queue_pause(self, name: str) -> None:
        with self._write() as conn:
            conn.execute(Q["queue_pause"], {"name": name, "now": time.time()})

    def queue_resume(self, name: str) -> None:
        with self._write() as conn:
            conn.execute(Q["queue_resume"], {"name": name, "now": time.time()})

    def queue_set_capacity(
        self, name: str, capacity: int | None, priority: Priority | None = None
    ) -> None:
        params = {"name": name, "capacity": capacity, "now": time.time()}
        if priority is None:
            query = Q["queue_set_capacity"]
        else:
            params["priority"] = int(priority)
            query = Q["queue_cap_clear" if capacity is None else "queue_cap_set"]
        with self._write() as conn:
            conn.execute(query, params)

    def queues_list(self) -> list[QueueInfo]:
        with self._read() as conn:
            rows = conn.execute(Q["queues_list"]).fetchall()
            caps = conn.execute(Q["queue_caps_list"]).fetchall()
        return queue_infos(rows, caps)

    def pool_set_paused(self, name: str, paused: bool) -> None:
        with self._write() as conn:
            conn.execute(Q["pool_set_paused"], {"name": name, "paused": paused, "now": time.time()})

    def pool_add(self, name: str) -> None:
        with self._write() as conn:
            conn.execute(Q["pool_add"], {"name": name, "now": time.time()})

    def pools_list(self) -> list[PoolInfo]:
        with self._read() as conn:
            rows = conn.execute(Q["pools_list"]).fetchall()
        return [PoolInfo(r[0], bool(r[1])) for r in rows]

    def queues_stats(self) -> list[QueueStats]:
        with self._read() as conn:
            rows = conn.execute(Q["queues_stats"]).fetchall()
        return [QueueStats(r[0], Priority(r[1]), JobState(r[2]), r[3]) for r in rows]

    def jobs_vacuum(self) -> bool:
        return False  # SQLite reuses the pages of deleted rows without help

    # -- schedules --------------------------------------------------------------------------

    def cron_fire(
        self,
        schedule: str,
        tick: datetime,
        job: NewJob,
        default_caps: Mapping[Priority, int] | None = None,
    ) -> int | None:
        key = {"schedule": schedule, "tick": tick.timestamp()}
        with self._write() as conn:
            if conn.execute(Q["cron_tick_insert"], key).fetchone() is None:
                return None  # another worker fired this tick
            job_id = self._insert(conn, [job], default_caps)[0]
            conn.execute(Q["cron_tick_job"], {**key, "job_id": job_id})
            return job_id

    def cron_ticks_prune(self, older_than_s: float) -> int:
        with self._write() as conn:
            return conn.execute(
                Q["cron_ticks_prune"], {"older_than_s": older_than_s, "now": time.time()}
            ).rowcount


def _filter(where: JobFilter) -> dict[str, Any]:
    params = filter_params(where)
    if params["ids"] is not None:
        params["ids"] = orjson.dumps(params["ids"]).decode()
    return params


class SqliteListener:
    """SQLite has no NOTIFY: watch ``PRAGMA data_version``, which moves on every commit made
    by another connection. It reads shared memory, so polling it every few ms is cheap."""

    POLL_S = 0.002

    def __init__(self, path: Path) -> None:
        self._conn = _connect(path)
        self._version = self._read()

    def _read(self) -> int:
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            version = self._read()
            if version != self._version:
                self._version = version
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(self.POLL_S)

    def close(self) -> None:
        self._conn.close()
