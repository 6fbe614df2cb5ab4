"""The PostgreSQL store's reads for the dashboard and /metrics, and the presence of worker
processes. A mixin of `PostgresStore`: the same connection and reconnection rules."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import psycopg

from ....db.queries import load_queries
from ...inspection import (
    HistoryPoint,
    JobPage,
    JobSearch,
    QueueLine,
    WorkerPresence,
    assemble_lines,
    hidden_queues,
)
from ...jobs import JobFilter
from ...states import Priority
from ..rows import as_stored, filter_params, job_from_row

IQ = load_queries(__package__ or "tailrace.engine.store.postgres", "inspect.sql")
T = TypeVar("T")
NO_BOUND = 2**63 - 1


def search_params(search: JobSearch) -> dict[str, Any]:
    text = search.text.strip() if search.text else None
    return {
        "state": search.state,
        "queue": search.queue,
        "task": search.task,
        "priority": int(search.priority) if search.priority is not None else None,
        "text": text or None,
        "text_id": int(text) if text and text.isdigit() and len(text) < 19 else None,
        "pattern": "%" + text.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_") + "%"
        if text
        else None,
        "after": search.after if search.after is not None else NO_BOUND,
        # one more than asked: whether a next page exists, without counting
        "limit": search.limit + 1,
        "hidden": hidden_queues(search.internal),
    }


class PostgresInspection:
    _run: Callable[..., Any]

    def _read(self, query: str, params: dict[str, Any] | None = None) -> list[Any]:
        def op(conn: psycopg.Connection[Any]) -> list[Any]:
            with conn.transaction():
                conn.execute(IQ["read_settings"])
                return conn.execute(IQ[query], params).fetchall()

        result: list[Any] = self._run(op)
        return result

    def jobs_search(self, search: JobSearch) -> JobPage:
        params = search_params(search)
        rows = self._read("jobs_search_state" if search.state else "jobs_search_any", params)
        jobs = [job_from_row(r, decode=as_stored) for r in rows[: search.limit]]
        more = len(rows) > search.limit
        return JobPage(jobs, jobs[-1].id if more and jobs else None)

    def jobs_count_capped(self, where: JobFilter, cap: int) -> int:
        params = {**filter_params(where), "cap": cap}

        def op(conn: psycopg.Connection[Any]) -> int:
            row = conn.execute(IQ["jobs_count_capped"], params).fetchone()
            return int(row[0]) if row else 0

        result: int = self._run(op)
        return result

    def jobs_cancel_where(self, where: JobFilter) -> int:
        params = filter_params(where)

        def op(conn: psycopg.Connection[Any]) -> int:
            return conn.execute(IQ["jobs_cancel_where"], params).rowcount

        result: int = self._run(op)
        return result

    def queue_lines(self, window_s: float) -> list[QueueLine]:
        return assemble_lines(self._read("queue_lines", {"window_s": window_s, "until": None}))

    def queue_depths(self) -> list[tuple[str, Priority, str, int]]:
        rows = self._read("queue_depths")
        return [(q, Priority(p), bucket, n) for q, p, bucket, n in rows]

    def queues_remember(self) -> int:
        def op(conn: psycopg.Connection[Any]) -> int:
            return conn.execute(IQ["queues_remember"]).rowcount

        result: int = self._run(op)
        return result

    # -- worker presence --------------------------------------------------------------------

    def worker_beat(
        self,
        worker_id: str,
        queues: Sequence[str] | None,
        priorities: Sequence[int],
        concurrency: int,
        in_flight: int,
        processed: int,
        pool: str | None = None,
    ) -> None:
        params = {
            "id": worker_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "queues": list(queues) if queues is not None else None,
            "priorities": list(priorities),
            "concurrency": concurrency,
            "in_flight": in_flight,
            "processed": processed,
            "pool": pool,
        }
        self._run(lambda conn: conn.execute(IQ["worker_beat"], params))

    def worker_gone(self, worker_id: str) -> None:
        self._run(lambda conn: conn.execute(IQ["worker_gone"], {"id": worker_id}))

    def workers_list(self) -> list[WorkerPresence]:
        rows = self._run(lambda conn: conn.execute(IQ["workers_list"]).fetchall())
        return [
            WorkerPresence(
                id=r[0],
                host=r[1],
                pid=r[2],
                queues=r[3],
                priorities=[Priority(p) for p in r[4]],
                concurrency=r[5],
                in_flight=r[6],
                processed=r[7],
                started_at=r[8],
                heartbeat_at=r[9],
                age_s=r[10],
                pool=r[11],
            )
            for r in rows
        ]

    def workers_forget(self, older_than_s: float) -> int:
        params = {"older_than_s": older_than_s}
        result: int = self._run(lambda conn: conn.execute(IQ["workers_forget"], params).rowcount)
        return result

    # -- history ----------------------------------------------------------------------------

    def history_roll(self, keep_s: float) -> bool:
        """Write the row of each queue for the minute that just began, once (the first
        worker to get here); True if this call wrote it."""

        def op(conn: psycopg.Connection[Any]) -> bool:
            with conn.transaction():
                conn.execute(IQ["read_settings"])
                minute = _scalar(conn, "history_minute")
                last = _scalar(conn, "history_last")
                if last is not None and last >= minute:
                    return False
                if not _scalar(conn, "history_lock"):
                    return False
                # the minute before this one, whole: each finished job in one row only
                params = {"window_s": 60.0, "until": minute}
                rows = conn.execute(IQ["queue_lines"], params).fetchall()
                totals = [x for x in assemble_lines(rows) if x.priority is None]
                conn.execute(IQ["history_insert"], history_params(minute, totals))
                conn.execute(IQ["history_prune"], {"older_than_s": keep_s})
                return True

        result: bool = self._run(op)
        return result

    def history_read(self, since_s: float, queue: str | None = None) -> list[HistoryPoint]:
        params = {"since_s": since_s, "queue": queue}
        rows = self._run(lambda conn: conn.execute(IQ["history_read"], params).fetchall())
        return [HistoryPoint(*r) for r in rows]


def _scalar(conn: psycopg.Connection[Any], name: str) -> Any:
    row = conn.execute(IQ[name]).fetchone()
    return row[0] if row else None


def history_params(at: datetime | float, totals: Sequence[QueueLine]) -> dict[str, Any]:
    return {
        "at": at,
        "queues": [x.queue for x in totals],
        "pending": [x.pending for x in totals],
        "scheduled": [x.scheduled for x in totals],
        "running": [x.running for x in totals],
        "dead": [x.dead for x in totals],
        "succeeded": [x.succeeded for x in totals],
        "failed": [x.died for x in totals],
        "p50": [x.wait_p50_s for x in totals],
        "p95": [x.wait_p95_s for x in totals],
    }
