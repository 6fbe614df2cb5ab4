"""The SQLite store's reads for the dashboard and /metrics, and the presence of worker
processes. A mixin of `SqliteStore`; percentiles are computed here (SQLite has none)."""

from __future__ import annotations

import math
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

import orjson

from ....db.queries import load_queries
from ...inspection import (
    HistoryPoint,
    JobPage,
    JobSearch,
    QueueLine,
    WorkerPresence,
    assemble_lines,
    hidden_queues,
    line_rows,
)
from ...jobs import JobFilter
from ...states import Priority
from ..rows import filter_params, job_from_row

IQ = load_queries(__package__ or "tailrace.engine.store.sqlite", "inspect.sql")
NO_BOUND = 2**63 - 1


def _epoch(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def _filter(where: JobFilter) -> dict[str, Any]:
    params = filter_params(where)
    if params["ids"] is not None:
        params["ids"] = orjson.dumps(params["ids"]).decode()
    return params


class SqliteInspection:
    _read: Callable[[], AbstractContextManager[sqlite3.Connection]]
    _write: Callable[[], AbstractContextManager[sqlite3.Connection]]

    def jobs_search(self, search: JobSearch) -> JobPage:
        text = search.text.strip() if search.text else None
        params = {
            "state": search.state,
            "queue": search.queue,
            "task": search.task,
            "priority": int(search.priority) if search.priority is not None else None,
            "text": text or None,
            "text_id": int(text) if text and text.isdigit() and len(text) < 19 else None,
            "pattern": "%"
            + text.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_")
            + "%"
            if text
            else None,
            "after": search.after if search.after is not None else NO_BOUND,
            "limit": search.limit + 1,
            "hidden": hidden_queues(search.internal),
        }
        with self._read() as conn:
            rows = conn.execute(IQ["jobs_search"], params).fetchall()
        jobs = [job_from_row(r) for r in rows[: search.limit]]
        more = len(rows) > search.limit
        return JobPage(jobs, jobs[-1].id if more and jobs else None)

    def jobs_count_capped(self, where: JobFilter, cap: int) -> int:
        with self._read() as conn:
            row = conn.execute(IQ["jobs_count_capped"], {**_filter(where), "cap": cap}).fetchone()
        return int(row[0])

    def jobs_cancel_where(self, where: JobFilter) -> int:
        with self._write() as conn:
            return conn.execute(
                IQ["jobs_cancel_where"], {**_filter(where), "now": time.time()}
            ).rowcount

    def _line_rows(
        self, conn: sqlite3.Connection, window_s: float, until: float | None = None
    ) -> list[tuple[Any, ...]]:
        """``until``: the window's end, excluded (None: now, included)."""
        now = time.time()
        end = now if until is None else until
        live = conn.execute(IQ["live_jobs"]).fetchall()
        bounds = {"since": end - window_s, "until": math.inf if until is None else until}
        recent = conn.execute(IQ["recent_jobs"], bounds).fetchall()
        return line_rows(live, recent, now, window_s, until)

    def queue_lines(self, window_s: float) -> list[QueueLine]:
        with self._read() as conn:
            return assemble_lines(self._line_rows(conn, window_s))

    def queue_depths(self) -> list[tuple[str, Priority, str, int]]:
        now = time.time()
        counts: dict[tuple[str, int, str], int] = {}
        with self._read() as conn:
            for queue, priority, state, run_at, _ in conn.execute(IQ["live_jobs"]):
                bucket = (
                    state
                    if state in ("running", "dead")
                    else ("scheduled" if run_at > now else "pending")
                )
                key = (queue, priority, bucket)
                counts[key] = counts.get(key, 0) + 1
        return [(q, Priority(p), b, n) for (q, p, b), n in sorted(counts.items())]

    def queues_remember(self) -> int:
        with self._write() as conn:
            return conn.execute(IQ["queues_remember"], {"now": time.time()}).rowcount

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
            "queues": orjson.dumps(list(queues)).decode() if queues is not None else None,
            "priorities": orjson.dumps(list(priorities)).decode(),
            "concurrency": concurrency,
            "in_flight": in_flight,
            "processed": processed,
            "pool": pool,
            "now": time.time(),
        }
        with self._write() as conn:
            conn.execute(IQ["worker_beat"], params)

    def worker_gone(self, worker_id: str) -> None:
        with self._write() as conn:
            conn.execute(IQ["worker_gone"], {"id": worker_id})

    def workers_list(self) -> list[WorkerPresence]:
        with self._read() as conn:
            rows = conn.execute(IQ["workers_list"]).fetchall()
        now = time.time()
        return [
            WorkerPresence(
                id=r[0],
                host=r[1],
                pid=r[2],
                queues=orjson.loads(r[3]) if r[3] is not None else None,
                priorities=[Priority(p) for p in orjson.loads(r[4])],
                concurrency=r[5],
                in_flight=r[6],
                processed=r[7],
                started_at=_epoch(r[8]),
                heartbeat_at=_epoch(r[9]),
                age_s=max(0.0, now - r[9]),
                pool=r[10],
            )
            for r in rows
        ]

    def workers_forget(self, older_than_s: float) -> int:
        with self._write() as conn:
            params = {"now": time.time(), "older_than_s": older_than_s}
            return conn.execute(IQ["workers_forget"], params).rowcount

    # -- history ----------------------------------------------------------------------------

    def history_roll(self, keep_s: float) -> bool:
        now = time.time()
        minute = now - now % 60
        with self._read() as conn:  # most calls stop here, without taking the write lock
            last = conn.execute(IQ["history_last"]).fetchone()[0]
        if last is not None and last >= minute:
            return False
        with self._write() as conn:
            last = conn.execute(IQ["history_last"]).fetchone()[0]
            if last is not None and last >= minute:
                return False
            # the minute before this one, whole: each finished job in one row only
            rows = self._line_rows(conn, 60.0, until=minute)
            totals = [x for x in assemble_lines(rows) if x.priority is None]
            for x in totals:
                conn.execute(
                    IQ["history_insert"],
                    {
                        "at": minute,
                        "queue": x.queue,
                        "pending": x.pending,
                        "scheduled": x.scheduled,
                        "running": x.running,
                        "dead": x.dead,
                        "succeeded": x.succeeded,
                        "failed": x.died,
                        "p50": x.wait_p50_s,
                        "p95": x.wait_p95_s,
                    },
                )
            conn.execute(IQ["history_prune"], {"now": now, "older_than_s": keep_s})
        return True

    def history_read(self, since_s: float, queue: str | None = None) -> list[HistoryPoint]:
        params = {"now": time.time(), "since_s": since_s, "queue": queue}
        with self._read() as conn:
            rows = conn.execute(IQ["history_read"], params).fetchall()
        return [HistoryPoint(_epoch(r[0]), *r[1:]) for r in rows]
