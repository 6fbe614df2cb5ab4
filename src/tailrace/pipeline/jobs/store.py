"""Where reprocessing jobs live: the same database as the engine's jobs (SQLite or PostgreSQL),
in the tables of the ``reprocessing`` migration line (``migrations/`` beside this module).
Each process opens its own `ReprocessingStore`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson

from tailrace.db import PATIENT, SCHEMA_LOCK, ConnectionPolicy, Database, Dialect, load_queries
from tailrace.errors import TailraceError
from tailrace.pipeline.jobs.model import (
    UNREADABLE,
    Counters,
    FileRecord,
    IngestStatus,
    LiveJob,
    ProcessedFile,
    ReprocessingConfig,
    ReprocessingJob,
    ReprocessingStatus,
    WorkerRecord,
)
from tailrace.pipeline.sources import SourceFile

_QUERIES = {d: load_queries("tailrace.pipeline.jobs", dialect=d) for d in Dialect}


T = TypeVar("T")
_INGEST_LOCK = 0x7A11_16E5  # serialises the claims of overlapping `tailrace ingest` runs


#: A running job none of whose workers has written its row for this long, and none of whose
#: file tasks holds a live lease, has lost its workers (leases last 6 s, see worker.py).
WORKERS_STALE_S = 15.0


class ReprocessingJobNotFoundError(TailraceError):
    """No reprocessing job has that id."""


class ReprocessingStore:
    """Reads and writes reprocessing jobs; every method is one short transaction.

    On PostgreSQL, a store that has connected once waits out later outages for as long as
    ``policy`` says (default: forever, for workers and the CLI that watch a job): a
    method whose connection drops reconnects and runs again. The admin service passes
    `PROMPT`. Connecting at construction is tried once: an unreachable database is an error.
    """

    def __init__(self, database_url: str, policy: ConnectionPolicy = PATIENT) -> None:
        self.url = database_url
        # Status and checkpoint writes, several a second per worker: on SQLite, NORMAL skips
        # the fsync per commit (WAL stays consistent). A power cut can cost the last
        # checkpoints: their events are sent again (a duplicate, never a loss), and an
        # exactly-once sink keeps its own mark.
        self._db = Database(database_url, policy, "reprocessing jobs", synchronous="NORMAL")
        self._db.connect()
        self._postgres = self._db.postgres
        self._q = _QUERIES[self._db.dialect]

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ReprocessingStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------

    def _now(self) -> Any:
        return self._db.dialect.now()

    def _json(self, value: Any) -> str:
        return orjson.dumps(value).decode()

    def _retried(self, op: Callable[[Any], T]) -> T:
        """``op(connection)``, run again on a new connection if the old one was lost (on
        PostgreSQL; see `Reconnecting.run`). ``op`` must be safe to repeat."""
        return self._db.run(op)

    def _tx(self) -> AbstractContextManager[Any]:
        return self._db.begin()

    def _all(self, name: str, **params: Any) -> list[tuple[Any, ...]]:
        return self._db.run(lambda c: list(c.execute(self._q[name], params).fetchall()))

    def _one(self, name: str, **params: Any) -> tuple[Any, ...] | None:
        rows = self._all(name, **params)
        return rows[0] if rows else None

    def _exec(self, name: str, **params: Any) -> int:
        return self._db.transaction(lambda c: int(c.execute(self._q[name], params).rowcount))

    # -- jobs -------------------------------------------------------------------------------

    def job_create(
        self,
        job_id: str,
        config: ReprocessingConfig,
        files: Sequence[SourceFile],
        total_workers: int,
        checkpoint_keys: Sequence[str | None] | None = None,
    ) -> None:
        now = self._now()
        with self._tx() as conn:
            conn.execute(
                self._q["job_insert"],
                {
                    "id": job_id,
                    "config": config.to_stored(),
                    "now": now,
                    "total_files": len(files),
                    "total_workers": total_workers,
                    "total_bytes": sum(f.size for f in files),
                },
            )
            keys = checkpoint_keys or [None] * len(files)
            rows = [
                {
                    "job_id": job_id,
                    "file_index": i,
                    "url": f.url,
                    "size": f.size,
                    "now": now,
                    "checkpoint_key": key,
                }
                for i, (f, key) in enumerate(zip(files, keys, strict=True))
            ]
            workers = [
                {
                    "job_id": job_id,
                    "worker_index": index,
                    "now": now,
                    "assigned_files": len(files[index::total_workers]),
                    "total_bytes": sum(f.size for f in files[index::total_workers]),
                }
                for index in range(total_workers)
            ]
            for name, batch in (("file_insert", rows), ("worker_insert", workers)):
                if self._postgres:
                    with conn.cursor() as cur:
                        cur.executemany(self._q[name], batch)
                else:
                    conn.executemany(self._q[name], batch)

    def job(self, job_id: str) -> ReprocessingJob:
        row = self._one("job_get", id=job_id)
        if row is None:
            raise ReprocessingJobNotFoundError(f"no reprocessing job {job_id!r}")
        job = self._job_from_row(row)
        for status, count, *sums in self._all("job_totals", id=job_id):
            job.files_by_status[status] = int(count)
            job.counters.add(Counters(*(int(v) for v in sums)))
        for (reasons,) in self._all("job_skip_reasons", id=job_id):
            for reason, count in _json_value(reasons).items():
                job.skip_reasons[reason] = job.skip_reasons.get(reason, 0) + int(count)
        return job

    def job_status(self, job_id: str) -> ReprocessingStatus:
        row = self._one("job_status", id=job_id)
        if row is None:
            raise ReprocessingJobNotFoundError(f"no reprocessing job {job_id!r}")
        return ReprocessingStatus(row[0])

    def jobs(self, limit: int = 100) -> list[ReprocessingJob]:
        return [self._job_from_row(row) for row in self._all("jobs_list", limit=limit)]

    def jobs_page(
        self, status: ReprocessingStatus | None = None, limit: int = 20, offset: int = 0
    ) -> tuple[list[ReprocessingJob], int]:
        """Newest first, with their file totals; and how many jobs match in all."""
        want = str(status) if status is not None else None
        rows = self._all("jobs_page", status=want, limit=limit, offset=offset)
        return [self.job(row[0]) for row in rows], self.jobs_count(status)

    def jobs_count(self, status: ReprocessingStatus | None = None) -> int:
        want = str(status) if status is not None else None
        (total,) = self._one("jobs_count", status=want) or (0,)
        return int(total)

    def jobs_metrics(self, limit: int) -> tuple[dict[str, int], list[LiveJob]]:
        """What a metrics scrape exports, read in one query: jobs by status, and the newest
        `limit` running and pending jobs with their files' and workers' counters."""
        counts: dict[str, int] = {}
        live: list[LiveJob] = []
        for job_id, status, count, total_bytes, *sums in self._all("metrics_jobs", limit=limit):
            if job_id is None:
                counts[status] = int(count)
                continue
            values = [int(v) for v in sums]
            live.append(
                LiveJob(
                    job_id,
                    ReprocessingStatus(status),
                    int(total_bytes or 0),
                    Counters(*values[:6]),
                    values[6],
                    Counters(*values[7:]),
                )
            )
        return counts, live

    def job_start(self, job_id: str) -> None:
        self._exec("job_start", id=job_id, now=self._now())

    def job_reset(self, job_id: str) -> bool:
        """Back to pending, if it was cancelled or failed (to resume it): False if not, so
        that of two resumes at once, one does it."""
        return self._exec("job_reset", id=job_id) > 0

    def job_set_status(
        self, job_id: str, status: ReprocessingStatus, error: str | None = None
    ) -> bool:
        changed = self._exec(
            "job_set_status",
            id=job_id,
            status=str(status),
            error=error,
            finished=status.finished,
            now=self._now(),
        )
        return changed > 0

    def job_set_workers(
        self, job_id: str, total_workers: int, k8s_job_name: str | None = None
    ) -> None:
        self._exec(
            "job_set_workers", id=job_id, total_workers=total_workers, k8s_job_name=k8s_job_name
        )

    def job_finalize(self, job_id: str) -> ReprocessingStatus:
        """Settle the job's status from its files once none is left to run; returns it.
        Completed only if every file completed; a file that failed fails the job, with an
        error that says how many and why."""
        job = self.job(job_id)
        if job.status in (ReprocessingStatus.COMPLETED, ReprocessingStatus.CANCELLED):
            return job.status
        by_status = job.files_by_status
        if by_status.get(ReprocessingStatus.PENDING) or by_status.get(ReprocessingStatus.RUNNING):
            return job.status
        # a worker still says running: the last one to finish settles the job, so a job
        # is never completed beside a worker row that says otherwise
        (running,) = self._one("workers_running", job_id=job_id) or (0,)
        if int(running):
            return job.status
        if by_status.get(ReprocessingStatus.FAILED):
            status = ReprocessingStatus.FAILED
            error = failed_files_error(self.files(job_id), job.total_files)
        elif by_status.get(ReprocessingStatus.CANCELLED):
            status, error = ReprocessingStatus.CANCELLED, None
        else:
            status, error = ReprocessingStatus.COMPLETED, None
        self.job_set_status(job_id, status, error)
        return status

    def job_abandoned(self, job_id: str, stale_s: float = WORKERS_STALE_S) -> str | None:
        """Why a running job's workers are gone, or None if it is not running or they may
        not be: none has written its row for `stale_s` and no file task holds a live lease
        (a worker renews its lease every few seconds while it reads a file)."""
        job = self.job(job_id)
        if job.status is not ReprocessingStatus.RUNNING:
            return None
        now = datetime.now(UTC)
        row = self._one("job_heartbeat", id=job_id, queue=f"reprocess:{job_id}", now=self._now())
        last_seen, leases = row if row is not None else (None, 0)
        if int(leases):
            return None
        seen = _time(last_seen) or job.started_at or job.created_at
        quiet = (now - seen).total_seconds()
        if quiet < stale_s:
            return None
        return (
            f"its workers are gone: none has reported for {quiet:.0f} s and no file holds a "
            "live lease (the process running them was killed, or stopped)"
        )

    def job_fail_abandoned(self, job_id: str, stale_s: float = WORKERS_STALE_S) -> bool:
        """Fail a running job whose workers are gone (`job_abandoned`), with the reason, so it
        can be resumed; False if it is not such a job."""
        reason = self.job_abandoned(job_id, stale_s)
        if reason is None:
            return False
        return self._exec("job_abandon", id=job_id, error=reason, now=self._now()) > 0

    def job_reopen(self, job_id: str) -> list[tuple[int, int]]:
        """Make every unfinished file pending again (for resume); returns (index, size)."""
        with self._tx() as conn:
            rows = conn.execute(
                self._q["files_reopen"],
                {"job_id": job_id, "now": self._now(), "unreadable": UNREADABLE + "%"},
            )
            return [(int(index), int(size)) for index, size in rows.fetchall()]

    def files_cancel_pending(self, job_id: str) -> int:
        return self._exec("files_cancel_pending", job_id=job_id, now=self._now())

    # -- files ------------------------------------------------------------------------------

    def files(self, job_id: str) -> list[FileRecord]:
        return [self._file_from_row(row) for row in self._all("files_list", job_id=job_id)]

    def file(self, job_id: str, index: int) -> FileRecord:
        row = self._one("file_get", job_id=job_id, file_index=index)
        if row is None:
            raise ReprocessingJobNotFoundError(f"job {job_id!r} has no file {index}")
        return self._file_from_row(row)

    def file_start(self, job_id: str, index: int, worker_index: int) -> FileRecord:
        self._exec(
            "file_start",
            job_id=job_id,
            file_index=index,
            worker_index=worker_index,
            now=self._now(),
        )
        return self.file(job_id, index)

    def file_checkpoint(
        self,
        job_id: str,
        index: int,
        line: int,
        offset: int,
        counters: Counters,
        skip_reasons: dict[str, int],
    ) -> None:
        self._exec(
            "file_checkpoint",
            job_id=job_id,
            file_index=index,
            line=line,
            offset=offset,
            skip_reasons=self._json(skip_reasons),
            now=self._now(),
            **counters.as_dict(),
        )

    def file_set_status(
        self, job_id: str, index: int, status: ReprocessingStatus, error: str | None = None
    ) -> None:
        self._exec(
            "file_set_status",
            job_id=job_id,
            file_index=index,
            status=str(status),
            error=error,
            finished=status.finished,
            now=self._now(),
        )

    # -- workers ----------------------------------------------------------------------------

    def worker_start(self, job_id: str, worker_index: int, process_id: str) -> None:
        self._exec(
            "worker_start",
            job_id=job_id,
            worker_index=worker_index,
            process_id=process_id,
            now=self._now(),
        )

    def worker_base(self, job_id: str, worker_index: int) -> tuple[int, int, Counters]:
        """What this worker index finished before: (files, their bytes, their counters)."""
        row = self._one("worker_base", job_id=job_id, worker_index=worker_index)
        assert row is not None  # an aggregate always returns a row
        files, size, *sums = (int(v) for v in row)
        return files, size, Counters(*sums)

    def worker_progress(
        self,
        job_id: str,
        worker_index: int,
        *,
        current_file: str | None,
        current_line: int,
        current_timestamp: str | None,
        assigned_files: int,
        processed_files: int,
        total_bytes: int,
        counters: Counters,
    ) -> None:
        self._exec(
            "worker_progress",
            job_id=job_id,
            worker_index=worker_index,
            current_file=current_file,
            current_line=current_line,
            current_timestamp=current_timestamp,
            assigned_files=assigned_files,
            processed_files=processed_files,
            total_bytes=total_bytes,
            now=self._now(),
            **counters.as_dict(),
        )

    def worker_finish(
        self, job_id: str, worker_index: int, status: ReprocessingStatus, error: str | None = None
    ) -> None:
        self._exec(
            "worker_finish",
            job_id=job_id,
            worker_index=worker_index,
            status=str(status),
            clean=status is ReprocessingStatus.COMPLETED,
            error=error,
            now=self._now(),
        )

    def workers_close_pending(self, job_id: str) -> int:
        """Mark a completed job's workers that never started completed: nothing was left."""
        return self._exec("workers_close_pending", job_id=job_id, now=self._now())

    def workers_fail_running(self, job_id: str, error: str) -> int:
        """Mark the workers that still say running as failed (their processes are gone)."""
        return self._exec("workers_fail_running", job_id=job_id, error=error, now=self._now())

    def workers(self, job_id: str) -> list[WorkerRecord]:
        return [self._worker_from_row(row) for row in self._all("workers_list", job_id=job_id)]

    # -- ingestion's record of files -------------------------------------------------------

    def processed_touch(self, job_id: str) -> None:
        """Say this run is alive: its PROCESSING files are not stuck."""
        self._exec("processed_touch", job_id=job_id, now=self._now())

    def processed_finish(
        self, file: ProcessedFile, status: IngestStatus, error: str | None = None
    ) -> None:
        self._exec(
            "processed_finish",
            bucket=file.bucket,
            key=file.key,
            version=file.version,
            job_id=file.job_id,
            status=str(status),
            completed=status is IngestStatus.COMPLETED,
            error=error,
            now=self._now(),
        )

    def processed_versions(self, scope: Scope | None) -> set[tuple[str, str, str]]:
        """(bucket, key, version) of every file recorded under `scope` (None: all)."""
        rows = self._all("processed_versions", **_scope_params(scope))
        return {(str(b), str(k), str(v)) for b, k, v in rows}

    def processed_record(self, files: Sequence[tuple[str, str, str, int, float | None]]) -> None:
        """Record unseen files (bucket, key, version, size, order time) as PENDING."""
        now = self._stamp(datetime.now(UTC).timestamp())
        rows = [
            {"bucket": b, "key": k, "version": v, "size": n, "modified": self._stamp(t), "now": now}
            for b, k, v, n, t in files
        ]
        if not rows:
            return
        with self._tx() as conn:
            if self._postgres:
                with conn.cursor() as cur:
                    cur.executemany(self._q["processed_insert"], rows)
            else:
                conn.executemany(self._q["processed_insert"], rows)

    def processed_claim_next(
        self, scope: Scope, job_id: str, *, max_attempts: int, stale_after_s: float
    ) -> ProcessedFile | None:
        """Claim for `job_id` the first file of `scope` in log order that is PENDING, FAILED
        with attempts left (unless its bytes could not be read: that fails again), or
        PROCESSING by a run that stopped touching it; None if none is. One file at a time, so
        that concurrent runs share the files."""
        now = datetime.now(UTC).timestamp()
        with self._tx() as conn:
            if self._postgres:
                conn.execute(SCHEMA_LOCK, (_INGEST_LOCK,))
            row = conn.execute(
                self._q["processed_claim_next"],
                {
                    **_scope_params(scope),
                    "job_id": job_id,
                    "now": self._stamp(now),
                    "max_attempts": max_attempts,
                    "unreadable": UNREADABLE + "%",
                    "stale_before": self._stamp(now - stale_after_s),
                },
            ).fetchone()
        if row is None:
            return None
        bucket, key, version, size, attempts = row
        return ProcessedFile(
            bucket, key, version, int(size), IngestStatus.PROCESSING, int(attempts), job_id
        )

    def processed_by_status(
        self, status: IngestStatus, scope: Scope | None = None
    ) -> list[ProcessedFile]:
        """The files of `scope` (None: all) in `status`, in log order."""
        rows = self._all("processed_by_status", status=str(status), **_scope_params(scope))
        return [_processed_from_row(row) for row in rows]

    def processed_reset(self, scope: Scope | None = None) -> list[ProcessedFile]:
        """FAILED files of `scope` (None: all) back to PENDING with no attempts counted, for
        the next run to take; returns them as they are now."""
        params = {**_scope_params(scope), "now": self._now()}
        with self._tx() as conn:
            rows = conn.execute(self._q["processed_reset"], params).fetchall()
        return [_processed_from_row(row) for row in rows]

    def processed_job_add(self, job_id: str, file: SourceFile, checkpoint_key: str) -> int:
        """Add one more file to an ingest run's job (which runs again); returns its index."""
        with self._tx() as conn:
            row = conn.execute(
                self._q["processed_job_grow"], {"id": job_id, "size": file.size}
            ).fetchone()
            if row is None:
                raise ReprocessingJobNotFoundError(f"no reprocessing job {job_id!r}")
            index = int(row[0]) - 1
            conn.execute(
                self._q["file_insert"],
                {
                    "job_id": job_id,
                    "file_index": index,
                    "url": file.url,
                    "size": file.size,
                    "now": self._now(),
                    "checkpoint_key": checkpoint_key,
                },
            )
        return index

    def processed_files(self) -> list[ProcessedFile]:
        return [
            ProcessedFile(b, k, v, int(size), IngestStatus(status), int(attempts), job, error)
            for b, k, v, size, status, attempts, job, error in self._all("processed_list")
        ]

    def _stamp(self, seconds: float | None) -> Any:
        if seconds is None:
            return None
        return datetime.fromtimestamp(seconds, UTC) if self._postgres else seconds

    # -- rows -------------------------------------------------------------------------------

    def _job_from_row(self, row: tuple[Any, ...]) -> ReprocessingJob:
        (job_id, config, status, created, started, completed, k8s, files, workers, size, error) = (
            row
        )
        return ReprocessingJob(
            id=job_id,
            config=ReprocessingConfig.from_stored(config),
            status=ReprocessingStatus(status),
            created_at=_time(created) or datetime.now(UTC),
            started_at=_time(started),
            completed_at=_time(completed),
            k8s_job_name=k8s,
            total_files=int(files),
            total_workers=int(workers),
            total_bytes=int(size),
            error=error,
        )

    def _file_from_row(self, row: tuple[Any, ...]) -> FileRecord:
        (job_id, index, url, size, status, worker, attempts, line, offset, *rest) = row
        counts, (reasons, error, started, completed, checkpoint_key) = rest[:6], rest[6:]
        return FileRecord(
            job_id=job_id,
            index=int(index),
            url=url,
            size=int(size),
            status=ReprocessingStatus(status),
            worker_index=None if worker is None else int(worker),
            attempts=int(attempts),
            line=int(line),
            offset=int(offset),
            counters=Counters(*(int(v) for v in counts)),
            skip_reasons={k: int(v) for k, v in _json_value(reasons).items()},
            error=error,
            started_at=_time(started),
            completed_at=_time(completed),
            checkpoint_key=checkpoint_key,
        )

    def _worker_from_row(self, row: tuple[Any, ...]) -> WorkerRecord:
        (job_id, index, status, started, updated, completed, file, line, moment) = row[:9]
        assigned, processed, lines, sent, filtered, skipped, errors, done_bytes = row[9:17]
        total_bytes, restarts, error = row[17:]
        return WorkerRecord(
            job_id=job_id,
            worker_index=int(index),
            status=ReprocessingStatus(status),
            started_at=_time(started),
            updated_at=_time(updated),
            completed_at=_time(completed),
            current_file=file,
            current_line=int(line),
            current_timestamp=moment,
            assigned_files=int(assigned),
            processed_files=int(processed),
            counters=Counters(
                int(lines), int(sent), int(filtered), int(skipped), int(errors), int(done_bytes)
            ),
            total_bytes=int(total_bytes),
            restarts=int(restarts),
            error=error,
        )


#: Which files of the ingestion record an operation covers: a bucket ("" for local files)
#: and a key prefix ("" for all its files).
Scope = tuple[str, str]


def _scope_params(scope: Scope | None) -> dict[str, Any]:
    bucket, prefix = scope if scope is not None else ("", "")
    return {"unscoped": scope is None, "bucket": bucket, "prefix": prefix, "n": len(prefix)}


def _processed_from_row(row: tuple[Any, ...]) -> ProcessedFile:
    bucket, key, version, size, status, attempts, job_id, error = row
    return ProcessedFile(
        bucket, key, version, int(size), IngestStatus(status), int(attempts), job_id, error
    )


#: How many failed files a job's error names (the files list has them all).
FAILED_FILES_SHOWN = 3


def failed_files_error(files: Sequence[FileRecord], total_files: int) -> str:
    """``2 of 5 files failed: a.ndjson.gz: unreadable: …; b.ndjson: …``."""
    failed = [f for f in files if f.status is ReprocessingStatus.FAILED]
    reasons = "; ".join(f"{f.url}: {f.error or 'failed'}" for f in failed[:FAILED_FILES_SHOWN])
    more = len(failed) - FAILED_FILES_SHOWN
    if more > 0:
        reasons += f"; and {more} more"
    return f"{len(failed)} of {total_files} files failed: {reasons}"


def _time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromtimestamp(float(value), UTC)


def _json_value(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


__all__ = ["ReprocessingJobNotFoundError", "ReprocessingStore", "Scope"]
