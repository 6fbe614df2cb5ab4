"""The PostgreSQL store: many workers on many machines, batch claim with SKIP LOCKED,
wake-ups by LISTEN/NOTIFY, bulk enqueue by COPY."""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import orjson
import psycopg
from psycopg.types.json import set_json_loads

from ....db.connection import DEFAULT, ConnectionPolicy, Reconnecting, connect
from ....db.migrations import migrate_postgres, pending_postgres
from ....db.queries import load_queries
from ....errors import JobNotFoundError, TailraceError
from ...capacity import Limits, adding_by_queue
from ...jobs import (
    ClaimedJob,
    Job,
    JobBatch,
    JobFilter,
    NewJob,
    Outcome,
    PoolInfo,
    QueueInfo,
    QueueStats,
)
from ...states import JobState, Priority
from ..rows import as_stored, claimed_from_row, filter_params, job_from_row, queue_infos
from .inspect import PostgresInspection

log = logging.getLogger("tailrace.store.postgres")
Q = load_queries(__package__ or "tailrace.engine.store.postgres")
T = TypeVar("T")


def _setup(conn: psycopg.Connection[Any]) -> None:
    # Claims must walk the claim index in order and stop after `limit` rows. Right after a
    # large enqueue, before autovacuum has analysed the table, or with a generic plan that
    # cannot know which queues are paused, the planner prefers a bitmap scan plus a sort of
    # every waiting job: 50 ms per claim at 200,000 waiting instead of 0.3 ms. Without sorts
    # and bitmap scans to prefer, it never does; nothing else this store runs needs them.
    conn.execute("SET enable_sort = off")
    conn.execute("SET enable_bitmapscan = off")
    set_json_loads(orjson.loads, conn)


def _connect(url: str, policy: ConnectionPolicy = DEFAULT) -> psycopg.Connection[Any]:
    conn = connect(url, policy)
    _setup(conn)
    return conn


class PostgresStore(PostgresInspection):
    """One connection, reconnected transparently when it breaks: an operation waits out a
    restart or an outage for as long as ``policy`` says (workers: forever)."""

    def __init__(self, url: str, policy: ConnectionPolicy = DEFAULT) -> None:
        self.url = url
        self.policy = policy
        self._db = Reconnecting(url, policy, "store", _setup)
        self._reaped_at: datetime | None = None  # the server's clock at our last reap

    # -- connection -------------------------------------------------------------------------

    def _run(self, op: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run ``op``; if the connection dies under it, reconnect and run it again.

        Every operation here is safe to repeat: a claim whose reply was lost is adopted by
        the retry (``jobs_claim``), a completion written twice changes nothing the second time.
        """
        return self._db.run(op)

    def close(self) -> None:
        self._db.close()

    # -- schema -----------------------------------------------------------------------------

    def migrate(self) -> list[str]:
        """Apply every migration line's missing files (see `tailrace.db.migrations`)."""
        return self._run(migrate_postgres)

    def migrations_pending(self) -> list[str]:
        return self._run(pending_postgres)

    # -- enqueue ----------------------------------------------------------------------------

    def jobs_insert(
        self,
        jobs: Sequence[NewJob],
        connection: Any | None = None,
        default_caps: Mapping[Priority, int] | None = None,
    ) -> list[int]:
        batch = JobBatch.of(jobs)
        caps = default_caps or {}
        if connection is not None:
            # the caller's transaction: no reconnect, no commit; the job exists iff it commits
            with connection.transaction():
                return self._insert(connection, batch, caps=caps)

        copy_ids: list[int] | None = None

        def op(conn: psycopg.Connection[Any]) -> list[int]:
            nonlocal copy_ids
            one = batch.runs[0][0] if len(batch) == 1 else None
            if one is not None and one.dedup_key is None and one.priority not in caps:
                row = conn.execute(Q["job_insert_uncapped"], self._params(batch[0])).fetchone()
                if row is not None:
                    return [row[0]]
            plain = _plain_count(batch)
            if plain > 16 and copy_ids is None:
                # reserved before the transaction, so that a retry after a lost commit can
                # tell that the batch is in (jobs with a dedup key are found again by it)
                copy_ids = self._reserve(conn, plain)
            elif copy_ids:
                found = conn.execute(Q["ids_present"], {"ids": copy_ids[:1]}).fetchone()
                if found and found[0]:
                    with conn.transaction():
                        return self._insert(conn, batch, copy_ids, copied=True)
            with conn.transaction():
                return self._insert(conn, batch, copy_ids, caps=caps)

        return self._run(op)

    def _insert(
        self,
        conn: psycopg.Connection[Any],
        batch: JobBatch,
        copy_ids: list[int] | None = None,
        copied: bool = False,
        caps: Mapping[Priority, int] | None = None,
    ) -> list[int]:
        if not copied:
            adding = adding_by_queue((t.queue, t.priority, len(a)) for t, a in batch.runs)
            for queue in sorted(adding):  # sorted: a fixed lock order
                self._check_capacity(conn, queue, adding[queue], caps)
        plain = _plain_count(batch)
        by_copy = plain > 16
        if by_copy:
            if copy_ids is None:
                copy_ids = self._reserve(conn, plain)
            if not copied:
                _copy(conn, batch, copy_ids)
        ids: list[int] = []
        taken = 0  # copy ids handed out so far, in the order _copy wrote the rows
        for template, args in batch.runs:
            if by_copy and template.dedup_key is None:
                assert copy_ids is not None
                ids += copy_ids[taken : taken + len(args)]
                taken += len(args)
            else:
                ids += [self._insert_one(conn, template, one.decode()) for one in args]
        return ids

    def _insert_one(self, conn: psycopg.Connection[Any], job: NewJob, args_json: str) -> int:
        if job.dedup_key is not None:
            conn.execute(Q["dedup_lock"], {"dedup_key": job.dedup_key})
            row = conn.execute(
                Q["dedup_existing"], {"dedup_key": job.dedup_key, "window_s": job.dedup_window_s}
            ).fetchone()
            if row is not None:
                return int(row[0])
        row = conn.execute(Q["job_insert"], self._params(job, args_json)).fetchone()
        assert row is not None
        return int(row[0])

    @staticmethod
    def _params(job: NewJob, args_json: str | None = None) -> dict[str, Any]:
        return {
            "queue": job.queue,
            "task": job.task,
            "args": job.args_json if args_json is None else args_json,
            "priority": int(job.priority),
            "run_at": job.run_at,
            "sort_at": job.sort_at,
            "max_attempts": job.max_attempts,
            "timeout_s": job.timeout_s,
            "dedup_key": job.dedup_key,
        }

    def _check_capacity(
        self,
        conn: psycopg.Connection[Any],
        queue: str,
        adding: dict[int, int],
        defaults: Mapping[Priority, int] | None,
    ) -> None:
        limits = Limits.of(conn.execute(Q["queue_limits"], {"queue": queue}).fetchall(), defaults)
        if not limits:
            return
        conn.execute(Q["capacity_lock"], {"queue": queue})
        rows = conn.execute(Q["queue_depth_by_priority"], {"queue": queue}).fetchall()
        limits.check(queue, {int(p): n for p, n in rows}, adding)

    def _reserve(self, conn: psycopg.Connection[Any], n: int) -> list[int]:
        row = conn.execute(Q["ids_reserve"], {"n": n}).fetchone()
        assert row is not None
        ids: list[int] = row[0]
        return ids

    # -- working ----------------------------------------------------------------------------

    def jobs_claim(
        self,
        worker_id: str,
        limit: int,
        lease_s: float,
        queues: Sequence[str] | None,
        priorities: Sequence[int],
        held: Sequence[int] = (),
        pool: str | None = None,
    ) -> list[ClaimedJob]:
        params = {
            "pool": pool,
            "worker_id": worker_id,
            "limit": limit,
            "lease_s": lease_s,
            "queues": list(queues) if queues else None,
            "priorities": [int(p) for p in priorities],
        }
        tries = 0

        def op(conn: psycopg.Connection[Any]) -> list[Any]:
            nonlocal tries
            tries += 1
            if tries == 1:
                return conn.execute(Q["jobs_claim"], params).fetchall()
            # The connection dropped under an earlier try, which may have claimed jobs and
            # committed before its reply was lost. They are ours: take them back (the jobs
            # running under our id that the worker does not hold), then claim the rest.
            adopted = conn.execute(
                Q["jobs_adopt"], {"worker_id": worker_id, "held": list(held), "lease_s": lease_s}
            ).fetchall()
            if adopted:
                log.warning(
                    "adopted jobs claimed before the connection was lost",
                    extra={"worker_id": worker_id, "job_ids": [r[0] for r in adopted]},
                )
            if len(adopted) >= limit:
                return adopted
            more = conn.execute(Q["jobs_claim"], {**params, "limit": limit - len(adopted)})
            return adopted + more.fetchall()

        rows = self._run(op)
        return sorted((claimed_from_row(r, as_stored) for r in rows), key=lambda j: j.id)

    def jobs_finish(self, worker_id: str, outcomes: Sequence[Outcome]) -> int:
        ok = [o.job_id for o in outcomes if o.state is JobState.SUCCEEDED]
        other = [o for o in outcomes if o.state is not JobState.SUCCEEDED]

        def op(conn: psycopg.Connection[Any]) -> int:
            count = 0
            with conn.transaction():
                if ok:
                    count += conn.execute(
                        Q["jobs_succeed"], {"ids": ok, "worker_id": worker_id}
                    ).rowcount
                if other:
                    count += conn.execute(
                        Q["jobs_end"],
                        {
                            "worker_id": worker_id,
                            "ids": [o.job_id for o in other],
                            "states": [o.state.value for o in other],
                            "errors": [
                                orjson.dumps(o.error).decode() if o.error else None for o in other
                            ],
                            "retry_ats": [o.retry_at for o in other],
                            "sort_ats": [o.sort_at for o in other],
                            "max_attempts": [o.max_attempts for o in other],
                        },
                    ).rowcount
            return count

        return self._run(op)

    def lease_renew(
        self, worker_id: str, job_ids: Sequence[int], lease_s: float
    ) -> tuple[set[int], set[int]]:
        params = {"ids": list(job_ids), "worker_id": worker_id, "lease_s": lease_s}
        rows = self._run(lambda conn: conn.execute(Q["lease_renew"], params).fetchall())
        return {r[0] for r in rows}, {r[0] for r in rows if r[1]}

    def jobs_release(self, worker_id: str, job_ids: Sequence[int]) -> int:
        def op(conn: psycopg.Connection[Any]) -> int:
            with conn.transaction():
                n = conn.execute(
                    Q["jobs_release"], {"ids": list(job_ids), "worker_id": worker_id}
                ).rowcount
                conn.execute(Q["wake_workers"])
            return n

        return self._run(op)

    def leases_reap(
        self, grace_s: float = 0.0, gap_s: float | None = None
    ) -> list[tuple[int, JobState]]:
        disrupted = self._db.disrupted_at
        if disrupted is not None and time.monotonic() - disrupted < grace_s:
            # We were cut off (or the server was frozen) moments ago: so were the workers
            # whose leases look expired. They renew first.
            return []
        params = {
            "grace_s": grace_s,
            "gap_s": gap_s or 0.0,
            "last_seen": self._reaped_at if gap_s is not None else None,
        }
        rows = self._run(lambda conn: conn.execute(Q["leases_reap"], params).fetchall())
        clock, reaped = rows[0][0], rows[1:]
        if gap_s is not None and self._reaped_at is not None:
            if (clock - self._reaped_at).total_seconds() >= gap_s:
                self._db.disrupted_at = time.monotonic()  # nothing was reaped: see the SQL
        self._reaped_at = clock
        if reaped:
            self._run(lambda conn: conn.execute(Q["wake_workers"]))
        return [(r[1], JobState(r[2])) for r in reaped]

    def listener(self) -> PostgresListener:
        return PostgresListener(self.url, self.policy)

    # -- inspection and operations ----------------------------------------------------------

    def job_get(self, job_id: int) -> Job:
        row = self._run(lambda conn: conn.execute(Q["job_get"], {"id": job_id}).fetchone())
        if row is None:
            raise JobNotFoundError(job_id)
        return job_from_row(row, decode=as_stored)

    def jobs_list(self, where: JobFilter, limit: int = 100, offset: int = 0) -> list[Job]:
        params = {**filter_params(where), "limit": limit, "offset": offset}
        rows = self._run(lambda conn: conn.execute(Q["jobs_list"], params).fetchall())
        return [job_from_row(r, decode=as_stored) for r in rows]

    def job_cancel(self, job_id: int) -> Job:
        row = self._run(lambda conn: conn.execute(Q["job_cancel"], {"id": job_id}).fetchone())
        if row is None:
            raise JobNotFoundError(job_id)
        return job_from_row(row, decode=as_stored)

    def jobs_replay(self, where: JobFilter, aging_s: float) -> int:
        params = {**filter_params(where), "aging_s": aging_s}
        params["state"] = params["state"] or JobState.DEAD.value
        row = self._run(lambda conn: conn.execute(Q["jobs_replay"], params).fetchone())
        return int(row[0]) if row else 0

    def jobs_discard(self, where: JobFilter) -> int:
        params = filter_params(where)
        params["state"] = params["state"] or JobState.DEAD.value
        return self._run(lambda conn: conn.execute(Q["jobs_discard"], params).rowcount)

    def jobs_prune(self, older_than_s: float, states: Sequence[JobState]) -> int:
        params = {"older_than_s": older_than_s, "states": [s.value for s in states]}
        total = 0
        while True:
            n = self._run(lambda conn: conn.execute(Q["jobs_prune"], params).rowcount)
            total += n
            if n < 10000:
                return total

    def queue_pause(self, name: str) -> None:
        self._run(lambda conn: conn.execute(Q["queue_pause"], {"name": name}))

    def queue_resume(self, name: str) -> None:
        def op(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction():
                conn.execute(Q["queue_resume"], {"name": name})
                conn.execute(Q["wake_workers"])

        self._run(op)

    def queue_set_capacity(
        self, name: str, capacity: int | None, priority: Priority | None = None
    ) -> None:
        params = {"name": name, "capacity": capacity, "priority": priority}
        if priority is None:
            query = Q["queue_set_capacity"]
        else:
            params["priority"] = int(priority)
            query = Q["queue_cap_clear" if capacity is None else "queue_cap_set"]
        self._run(lambda conn: conn.execute(query, params))

    def queues_list(self) -> list[QueueInfo]:
        def op(conn: psycopg.Connection[Any]) -> tuple[list[Any], list[Any]]:
            return (
                conn.execute(Q["queues_list"]).fetchall(),
                conn.execute(Q["queue_caps_list"]).fetchall(),
            )

        rows, caps = self._run(op)
        return queue_infos(rows, caps)

    def pool_set_paused(self, name: str, paused: bool) -> None:
        def op(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction():
                conn.execute(Q["pool_set_paused"], {"name": name, "paused": paused})
                if not paused:
                    conn.execute(Q["wake_workers"])

        self._run(op)

    def pool_add(self, name: str) -> None:
        self._run(lambda conn: conn.execute(Q["pool_add"], {"name": name}))

    def pools_list(self) -> list[PoolInfo]:
        rows = self._run(lambda conn: conn.execute(Q["pools_list"]).fetchall())
        return [PoolInfo(r[0], bool(r[1])) for r in rows]

    def queues_stats(self) -> list[QueueStats]:
        rows = self._run(lambda conn: conn.execute(Q["queues_stats"]).fetchall())
        return [QueueStats(r[0], Priority(r[1]), JobState(r[2]), r[3]) for r in rows]

    def jobs_vacuum(self) -> bool:
        def op(conn: psycopg.Connection[Any]) -> bool:
            needed = conn.execute(Q["vacuum_needed"]).fetchone()
            if not (needed and needed[0]):
                return False
            locked = conn.execute(Q["vacuum_lock"]).fetchone()
            if not (locked and locked[0]):
                return False  # another worker is at it
            try:
                conn.execute(Q["vacuum"])
            finally:
                conn.execute(Q["vacuum_unlock"])
            return True

        return self._run(op)

    # -- schedules --------------------------------------------------------------------------

    def cron_fire(
        self,
        schedule: str,
        tick: datetime,
        job: NewJob,
        default_caps: Mapping[Priority, int] | None = None,
    ) -> int | None:
        caps = default_caps or {}

        def op(conn: psycopg.Connection[Any]) -> int | None:
            with conn.transaction():
                key = {"schedule": schedule, "tick": tick}
                if conn.execute(Q["cron_tick_insert"], key).fetchone() is None:
                    return None  # another worker fired this tick
                job_id = self._insert(conn, JobBatch.of([job]), caps=caps)[0]
                conn.execute(Q["cron_tick_job"], {**key, "job_id": job_id})
                return job_id

        return self._run(op)

    def cron_ticks_prune(self, older_than_s: float) -> int:
        params = {"older_than_s": older_than_s}
        return self._run(lambda conn: conn.execute(Q["cron_ticks_prune"], params).rowcount)


def _plain_count(batch: JobBatch) -> int:
    """How many of the batch's jobs have no dedup key (those go in by COPY)."""
    return sum(len(args) for template, args in batch.runs if template.dedup_key is None)


# COPY's binary format: each value is sent as the server stores it, so the server parses no
# text (no timestamps, no integers), and each run's shared columns are encoded only once.
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_COPY_TRAILER = struct.pack("!h", -1)
# per row: 9 fields; the id (int8); the args (jsonb: length, then version 1, then the text)
_ROW_HEAD = struct.Struct("!hiqiB")
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_FLUSH_BYTES = 128 * 1024  # send as we go: the server inserts while we encode


def _copy(conn: psycopg.Connection[Any], batch: JobBatch, ids: list[int]) -> None:
    """COPY the batch's jobs without a dedup key, with ``ids`` in order."""
    pack = _ROW_HEAD.pack
    position = 0
    with conn.cursor().copy(Q["jobs_copy"]) as copy:
        out = bytearray(_COPY_HEADER)
        for template, args in batch.runs:
            if template.dedup_key is not None:
                continue
            tail = _row_tail(template)
            for one in args:
                out += pack(9, 8, ids[position], len(one) + 1, 1)
                out += one
                out += tail
                position += 1
                if len(out) > _FLUSH_BYTES:
                    copy.write(out)
                    out = bytearray()
        out += _COPY_TRAILER
        copy.write(out)


def _row_tail(job: NewJob) -> bytes:
    """The columns after the arguments, as COPY's binary format wants them."""
    queue, task = job.queue.encode(), job.task.encode()
    try:
        return b"".join(
            (
                struct.pack("!i", len(queue)),
                queue,
                struct.pack("!i", len(task)),
                task,
                struct.pack("!ih", 2, int(job.priority)),
                struct.pack("!iq", 8, (job.run_at - _PG_EPOCH) // _MICROSECOND),
                struct.pack("!iq", 8, (job.sort_at - _PG_EPOCH) // _MICROSECOND),
                struct.pack("!ii", 4, job.max_attempts),
                struct.pack("!i", -1)
                if job.timeout_s is None
                else struct.pack("!id", 8, float(job.timeout_s)),
            )
        )
    except (TypeError, struct.error) as exc:  # a naive datetime, a number out of range
        raise TailraceError(f"a {job.task!r} job cannot be stored: {exc}") from None


class PostgresListener:
    """LISTEN on its own connection; reconnects when the connection drops."""

    def __init__(self, url: str, policy: ConnectionPolicy = DEFAULT) -> None:
        self.url = url
        self.policy = policy
        self._conn: psycopg.Connection[Any] | None = None

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = _connect(self.url, self.policy)
            self._conn.execute("LISTEN tailrace_jobs")
        return self._conn

    def wait(self, timeout: float) -> bool:
        try:
            conn = self._connection()
            # notifies() holds the connection's (non-reentrant) lock until the generator is
            # closed: close the first one before draining with a second, or it deadlocks
            first = conn.notifies(timeout=timeout, stop_after=1)
            try:
                got = next(first, None) is not None
            finally:
                first.close()
            if got:
                # drain what queued up meanwhile: one claim answers them all
                for _ in conn.notifies(timeout=0.0):
                    pass
            return got
        except psycopg.OperationalError:
            if self._conn is not None:
                self._conn.close()
            self._conn = None
            time.sleep(min(timeout, 0.5))
            return True  # we may have missed a notification while cut off

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
