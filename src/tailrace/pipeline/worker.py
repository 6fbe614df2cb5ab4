"""The reprocessing worker: one process, one file at a time, until its job has none left.

It is an engine worker in burst mode on the job's queue, running one task: stream a file
with `FileRun`. It needs only the database URL, the job id and its index, so any executor
can start it (`tailrace worker --job ID --index I`, or `JOB_ID` and `WORKER_INDEX`).

A worker killed mid-file leaves the file's engine task running under an expired lease; the
reaper of any live worker returns it, and the next claim resumes the file from its last
checkpoint (the sink's own mark for an exactly-once sink).
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import time
from dataclasses import dataclass, field

from tailrace.engine.app import App
from tailrace.engine.jobs import JobFilter
from tailrace.engine.states import JobState
from tailrace.engine.tasks import JobContext
from tailrace.engine.worker import Worker, WorkerOptions
from tailrace.errors import JobCancelledError
from tailrace.pipeline.decoders.framing import Checkpoint
from tailrace.pipeline.filters import EventFilter
from tailrace.pipeline.jobs import (
    Counters,
    FileRecord,
    ReprocessingConfig,
    ReprocessingStatus,
    ReprocessingStore,
)
from tailrace.pipeline.plan import REPROCESS_TASK, job_queue
from tailrace.pipeline.routing import ConnectionRouter, RoutingError, router_from_environment
from tailrace.pipeline.run import FileRun, FileState, RunSettings, state_from_mark
from tailrace.pipeline.runtime import event_fields, event_filter, source_for
from tailrace.pipeline.sinks import (
    DeadLetterWriter,
    Sink,
    SinkError,
    open_deadletter,
    open_sink,
    parse_sink_url,
)
from tailrace.pipeline.sinks.file import check_holds
from tailrace.pipeline.sinks.limited import LimitedSink
from tailrace.pipeline.sources import Source, SourceFile
from tailrace.pipeline.start_line import BEFORE_START_LINE, skip_lines, starts_inside

log = logging.getLogger("tailrace.reprocess")

# Short leases: a killed worker's file is back in play within seconds.
LEASE_S = 6.0


@dataclass
class _Totals:
    """What this worker index has done: finished files plus the file in hand."""

    assigned_files: int = 0
    processed_files: int = 0
    total_bytes: int = 0
    done: Counters = field(default_factory=Counters)


class ReprocessWorker:
    def __init__(
        self,
        database_url: str,
        job_id: str,
        worker_index: int,
        *,
        settings: RunSettings | None = None,
        lease_s: float = LEASE_S,
    ) -> None:
        self.database_url = database_url
        self.job_id = job_id
        self.index = worker_index
        self._settings = settings
        self.lease_s = lease_s
        self.process_id = f"{socket.gethostname()}:{os.getpid()}"
        self._store: ReprocessingStore | None = None
        self._config: ReprocessingConfig | None = None
        self._source: Source | None = None
        self._sink: Sink | None = None
        self._deadletters: DeadLetterWriter | None = None
        self._filter: EventFilter | None = None
        self._router: ConnectionRouter | None = None
        self._routed = False  # the router is set up (None too: no routing asked for)
        self._app: App | None = None
        self._totals = _Totals()
        self._live = Counters()  # finished files plus the file in hand, at its last status

    def progress(self) -> tuple[int, int, int, Counters]:
        """Files assigned and processed, bytes to process, and the lines' counters so far
        (for `worker_metrics`; read from another thread: each is replaced, never mutated)."""
        totals = self._totals
        return totals.assigned_files, totals.processed_files, totals.total_bytes, self._live

    @property
    def store(self) -> ReprocessingStore:
        if self._store is None:
            self._store = ReprocessingStore(self.database_url)
        return self._store

    def run(self) -> ReprocessingStatus:
        """Work the job's files until none is left; returns the job's status then."""
        app = App(self.database_url)
        app.task(name=REPROCESS_TASK, pass_context=True)(self.process_file)
        self._app = app
        try:
            app.store.migrate()
            job = self.store.job(self.job_id)
            if job.status.finished:
                log.info("job already finished", extra={"job_id": self.job_id})
                return job.status
            self._config = job.config
            self.store.worker_start(self.job_id, self.index, self.process_id)
            files, size, done = self.store.worker_base(self.job_id, self.index)
            self._totals = _Totals(files, files, size, done)
            self._live = done.copy()
            if job.status is ReprocessingStatus.PENDING:
                self.store.job_start(self.job_id)
            options = WorkerOptions(
                queues=[job_queue(self.job_id)],
                concurrency=1,
                batch_size=1,
                lease_s=self.lease_s,
                poll_s=0.5,
                shutdown_grace_s=2.0,
                burst=True,
            )
            error: str | None = None
            try:
                Worker(app, options).run()
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                raise
            finally:
                self._close_outputs()
                # this row first: the job settles only once no worker row says running
                mine = _worker_status(self.store.job_status(self.job_id), error)
                self.store.worker_finish(self.job_id, self.index, mine, error)
                status = self.store.job_finalize(self.job_id)
            return status
        finally:
            app.close()
            if self._store is not None:
                self._store.close()

    # -- one file ---------------------------------------------------------------------------

    def process_file(self, ctx: JobContext, job_id: str, file_index: int) -> None:
        store = self.store
        record = store.file(job_id, file_index)
        if record.status in (ReprocessingStatus.COMPLETED, ReprocessingStatus.FAILED):
            return  # a task that ran twice: the file is done, or failed for good
        job_status = store.job_status(job_id)
        if job_status in (ReprocessingStatus.CANCELLED, ReprocessingStatus.FAILED):
            # claimed in the instant the job was stopped: leave the file as it stands
            self._file_stopped(job_id, file_index, job_status)
            raise JobCancelledError(f"job {job_id} is {job_status}")
        try:
            router = self._routing()
        except RoutingError as exc:
            self._routing_failed(job_id, file_index, record.url, exc)
            return  # not retried here: the job failed, and a resume continues it
        record = store.file_start(job_id, file_index, self.index)
        totals = self._totals
        totals.assigned_files += 1
        totals.total_bytes += record.size
        try:
            run = self._file_run(_Hooks(self, ctx, record), router)
            run.sink.stop_when(ctx.cancelled)  # a stopping worker is not held by an outage
            state = self._resume_state(record)
            if record.attempts > 1:  # read before: its dead letters may be there already
                run.deadletters.resume(record.url)
            log.info(
                "file started",
                extra={
                    "job_id": job_id,
                    "file": record.url,
                    "size": record.size,
                    "resume_line": state.checkpoint.line,
                },
            )
            result = run.run(self._source_(), SourceFile(record.url, record.size), state)
        except Exception as exc:
            if isinstance(exc, SinkError):
                self._drop_sink()  # a sink that failed may be unusable: the retry opens anew
            last = ctx.attempt >= ctx.max_attempts
            status = ReprocessingStatus.FAILED if last else ReprocessingStatus.PENDING
            store.file_set_status(job_id, file_index, status, f"{type(exc).__name__}: {exc}")
            log.warning(
                "file failed" if last else "file will be retried",
                extra={"job_id": job_id, "file": record.url, "error": str(exc)},
            )
            raise
        done = result.state
        if result.cancelled:
            stopped = store.job_status(job_id)
            self._file_stopped(job_id, file_index, stopped)
            raise JobCancelledError(f"file {record.url} stopped: job {job_id} is {stopped}")
        if result.error is not None:
            # The same bytes would fail the same way: failed for good, no retry. What was
            # read before the damage was delivered and is counted; the rest is unread.
            store.file_set_status(job_id, file_index, ReprocessingStatus.FAILED, result.error)
            totals.done.add(done.counters)
            log.error(
                "file failed",
                extra={"job_id": job_id, "file": record.url, "error": result.error},
            )
        else:
            store.file_set_status(job_id, file_index, ReprocessingStatus.COMPLETED)
            totals.processed_files += 1
            totals.done.add(done.counters)
        self._live = totals.done.copy()
        # the file's last status write came before it counted as processed
        store.worker_progress(
            job_id,
            self.index,
            current_file=record.url,
            current_line=done.checkpoint.line,
            current_timestamp=None,
            assigned_files=totals.assigned_files,
            processed_files=totals.processed_files,
            total_bytes=totals.total_bytes,
            counters=totals.done,
        )
        if result.error is None:
            log.info(
                "file completed",
                extra={"job_id": job_id, "file": record.url, **done.counters.as_dict()},
            )

    def _file_stopped(self, job_id: str, file_index: int, job_status: ReprocessingStatus) -> None:
        """A file stopped because its job was: cancelled with a cancelled job, left to run
        again (pending) in a failed one, which a resume continues."""
        status = (
            ReprocessingStatus.CANCELLED
            if job_status is ReprocessingStatus.CANCELLED
            else ReprocessingStatus.PENDING
        )
        self.store.file_set_status(job_id, file_index, status)

    def _routing_failed(self, job_id: str, file_index: int, url: str, exc: RoutingError) -> None:
        """No route, no send: the file fails with the reason, and so does the job, at once:
        every other file would meet the same repository. Its other workers stop at their
        next checkpoint; `tailrace reprocessing resume` continues once the repository
        answers."""
        reason = f"routing: {exc}"
        self.store.file_set_status(job_id, file_index, ReprocessingStatus.FAILED, reason)
        self.store.job_set_status(
            job_id,
            ReprocessingStatus.FAILED,
            f"{reason}; nothing was sent unrouted. Resume the job once the repository answers",
        )
        log.error("file failed", extra={"job_id": job_id, "file": url, "error": reason})
        if self._app is not None:
            queue = job_queue(job_id)
            for state in (JobState.PENDING, JobState.FAILED):
                for task in self._app.jobs(JobFilter(state=state, queue=queue), limit=100_000):
                    self._app.cancel(task.id)

    def _resume_state(self, record: FileRecord) -> FileState:
        sink = self._sink_()
        if sink.exactly_once:
            mark = sink.committed(record.key)
            state = state_from_mark(mark) if mark is not None else FileState(record.key)
        else:
            state = FileState(
                record.key,
                Checkpoint(record.line, record.offset),
                record.counters.copy(),
                dict(record.skip_reasons),
            )
        fresh = state.checkpoint == Checkpoint() and not state.counters.lines
        if fresh and starts_inside(self.config, record.url):
            source_file = SourceFile(record.url, record.size)
            at, counts = skip_lines(self._source_(), source_file, self.config.start_line)
            state = FileState(record.key, at, counts, {BEFORE_START_LINE: counts.skipped})
        return state

    # -- what a file needs, built once per process ------------------------------------------

    @property
    def config(self) -> ReprocessingConfig:
        assert self._config is not None, "run() loads the job's config first"
        return self._config

    def _source_(self) -> Source:
        if self._source is None:
            self._source = source_for(self.config)
        return self._source

    def _sink_(self) -> Sink:
        if self._sink is None:
            sink = open_sink(self.config.sink, roots=self.config.write_roots)
            # what this job's files sent so far, as of their checkpoints (read once, if asked)
            sent = functools.cache(lambda: self.store.job(self.job_id).counters.sent)
            # records this job made durable in an earlier run must still be there
            check_holds(sink, sent)
            if self.config.limit:
                # one worker runs a job with a limit (plan.create_job): what its files sent
                # so far is all that was sent
                sink = LimitedSink(sink, self.config.limit - sent())
            self._sink = sink
        return self._sink

    def _routing(self) -> ConnectionRouter | None:
        """The job's router, set up once per process (the repository fetched with retries and
        backoff, see `router_from_environment`); raises `RoutingError` if it cannot be, and
        the next file tries again."""
        if not self._routed:
            self._router = router_from_environment(self.config.connection_ids or None)
            self._routed = True
        return self._router

    def _file_run(self, hooks: _Hooks, router: ConnectionRouter | None) -> FileRun:
        if self._deadletters is None:
            self._deadletters = open_deadletter(
                parse_sink_url(self.config.sink), roots=self.config.write_roots
            )
        if self._filter is None:
            self._filter = event_filter(self.config)
        return FileRun(
            sink=self._sink_(),
            deadletters=self._deadletters,
            event_filter=self._filter,
            router=router,
            fields=event_fields(self.config),
            hooks=hooks,
            settings=self._settings
            or RunSettings(
                checkpoint_s=self.config.checkpoint_s, batch_size=self.config.batch_size
            ),
        )

    def _drop_sink(self) -> None:
        sink, self._sink = self._sink, None
        if sink is not None:
            try:
                sink.close()
            except Exception:
                log.warning("closing a failed sink failed too", extra={"job_id": self.job_id})

    def _close_outputs(self) -> None:
        for output in (self._sink, self._deadletters):
            if output is not None:
                try:
                    output.close()
                except Exception:
                    log.exception("closing an output failed", extra={"job_id": self.job_id})


def _worker_status(job: ReprocessingStatus, error: str | None) -> ReprocessingStatus:
    """A worker's own ending: failed if it crashed, else cancelled or completed with its job
    (files it left unfinished are the job's to report)."""
    if error:
        return ReprocessingStatus.FAILED
    return (
        ReprocessingStatus.CANCELLED
        if job is ReprocessingStatus.CANCELLED
        else ReprocessingStatus.COMPLETED
    )


class _Hooks:
    """Status writes, checkpoints and the cancel signal for one file."""

    def __init__(self, worker: ReprocessWorker, ctx: JobContext, record: FileRecord) -> None:
        self.worker = worker
        self.ctx = ctx
        self.record = record
        self._next_job_check = 0.0

    def status(self, line: int, event_time: str | None, counters: Counters) -> None:
        totals = self.worker._totals
        total = totals.done.copy()
        total.add(counters)
        self.worker._live = total
        self.worker.store.worker_progress(
            self.record.job_id,
            self.worker.index,
            current_file=self.record.url,
            current_line=line,
            current_timestamp=event_time,
            assigned_files=totals.assigned_files,
            processed_files=totals.processed_files,
            total_bytes=totals.total_bytes,
            counters=total,
        )

    def checkpoint(
        self, checkpoint: Checkpoint, counters: Counters, skip_reasons: dict[str, int]
    ) -> None:
        record = self.record
        self.worker.store.file_checkpoint(
            record.job_id,
            record.index,
            checkpoint.line,
            checkpoint.offset,
            counters,
            skip_reasons,
        )

    def cancelled(self) -> bool:
        if self.ctx.cancelled.is_set():
            return True
        # The engine sees a cancel at its next heartbeat; the job row says it sooner.
        now = time.monotonic()
        if now >= self._next_job_check:
            self._next_job_check = now + 1.0
            status = self.worker.store.job_status(self.record.job_id)
            if status in (
                ReprocessingStatus.CANCELLED,
                ReprocessingStatus.FAILED,
            ):  # failed: by another worker
                self.ctx.cancelled.set()
                return True
        return False
