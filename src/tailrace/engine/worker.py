"""The worker: claims jobs in batches, runs them, reports outcomes in batches.

One asyncio loop per process. Async tasks run on the loop; sync tasks on daemon threads.
Store calls are blocking and run on single-thread executors, each with its own connection, so
that none waits for another's round trip: claims; completions and lease renewals; the listener
(which also claims when it wakes an idle worker); and maintenance.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import socket
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from ..db.connection import PATIENT
from ..errors import JobCancelledError, JobTimeoutError, UnknownTaskError
from ..observability import tracing
from ..settings import max_attempts_from_env
from . import metrics
from .app import App
from .jobs import ClaimedJob, Outcome
from .maintenance import Maintenance
from .states import JobState, Priority
from .store import Store
from .tasks import JobContext, call_args
from .threads import TaskThreads

log = logging.getLogger("tailrace.worker")
T = TypeVar("T")


@dataclass
class WorkerOptions:
    queues: list[str] | None = None  # None: every queue
    priorities: list[Priority] = field(default_factory=lambda: list(Priority))
    concurrency: int = 16
    batch_size: int = 200
    lease_s: float = 30.0
    heartbeat_s: float | None = None  # default: a third of the lease
    poll_s: float = 1.0  # fallback when no notification arrives (delayed jobs, retries)
    shutdown_grace_s: float = 30.0
    maintenance_s: float = 1.0
    retention_s: float = 86400.0  # succeeded and cancelled jobs are pruned after this
    prune_every_s: float = 60.0
    burst: bool = False  # exit once nothing is left to run in our queues
    # the pool an operator pauses and resumes (`tailrace queues pause-pool NAME`)
    pool: str | None = None
    # False: claim nothing and fire no schedule (QUARKUS_SCHEDULER_ENABLED=false at start)
    enabled: bool = True

    @property
    def heartbeat_interval(self) -> float:
        return self.heartbeat_s if self.heartbeat_s is not None else self.lease_s / 3


@dataclass
class _Running:
    job: ClaimedJob
    ctx: JobContext
    task: asyncio.Task[None] | None = None
    stop_reason: str | None = None  # "cancel", "lease" or "shutdown" once we stop it


class Worker:
    def __init__(self, app: App, options: WorkerOptions | None = None) -> None:
        self.app = app
        self.options = options or WorkerOptions()
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._running: dict[int, _Running] = {}
        self._outcomes: list[Outcome] = []
        self._stopping = False
        self._wake = asyncio.Event()  # a slot freed, or stop requested
        self._stop_requested = asyncio.Event()
        self._flush = asyncio.Event()  # outcomes waiting to be written
        self.processed = 0
        # JOBS_RETRY_MAX_ATTEMPTS_<PRIORITY> where this worker runs: it decides retries, so
        # its setting wins over the one the enqueuing process stored (not over a task's own)
        self.max_attempts = {
            Priority[name]: n for name, n in max_attempts_from_env(p.name for p in Priority).items()
        }

    # -- lifecycle --------------------------------------------------------------------------

    def run(self) -> None:
        """Run until SIGTERM/SIGINT (or, in burst mode, until the queues are empty)."""
        asyncio.run(self.run_async())

    def stop(self) -> None:
        """Stop claiming; in-flight jobs get ``shutdown_grace_s`` to finish. Thread-safe."""
        loop: asyncio.AbstractEventLoop | None = getattr(self, "_loop", None)
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._request_stop)
        else:
            self._request_stop()

    def _request_stop(self) -> None:
        if not self._stopping:
            log.info("worker stopping", extra={"worker_id": self.id})
        self._stopping = True
        self._wake.set()
        self._stop_requested.set()

    async def run_async(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._claim_db = ThreadPoolExecutor(1, thread_name_prefix="tailrace-claim")
        self._done_db = ThreadPoolExecutor(1, thread_name_prefix="tailrace-done")
        self._listen_db = ThreadPoolExecutor(1, thread_name_prefix="tailrace-listen")
        self._threads = TaskThreads(self._loop, self.options.concurrency, "tailrace-job")
        # A worker waits out any database outage: its store calls reconnect for as long as
        # it takes (and log while they do), they never give up and end the worker.
        open_store = functools.partial(self.app.open_store, PATIENT)
        self._claim_store: Store = await self._on(self._claim_db, open_store)
        self._done_store: Store = await self._on(self._done_db, open_store)
        self._listener = await self._on(self._listen_db, self._claim_store.listener)
        # maintenance has its own connection: a vacuum must not hold up completions
        self._upkeep_db = ThreadPoolExecutor(1, thread_name_prefix="tailrace-upkeep")
        self._upkeep_store: Store = await self._on(self._upkeep_db, open_store)
        self._maintenance = Maintenance(
            self.app,
            self._upkeep_store,
            self.options.retention_s,
            self.options.prune_every_s,
            lease_s=self.options.lease_s,
            every_s=self.options.maintenance_s,
            pool=self.options.pool,
            enabled=self.options.enabled,
        )
        if self.options.pool:  # listed by `tailrace queues pools` from its first worker on
            await self._on(self._upkeep_db, self._upkeep_store.pool_add, self.options.pool)
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._loop.add_signal_handler(sig, self._on_signal)
            except (NotImplementedError, RuntimeError):  # not the main thread
                pass
        log.info(
            "worker started",
            extra={
                "worker_id": self.id,
                "queues": self.options.queues or "*",
                "priorities": [p.name for p in self.options.priorities],
                "concurrency": self.options.concurrency,
                "pool": self.options.pool,
                "store": self.app.database_url.split(":")[0],
            },
        )
        if not self.options.enabled:
            log.warning(
                "job processing is disabled (QUARKUS_SCHEDULER_ENABLED or "
                "TAILRACE_WORKER_ENABLED is false): this worker claims no job and fires no "
                "schedule until it restarts enabled; pause a pool to switch without a restart",
                extra={"worker_id": self.id},
            )
        background = [
            asyncio.create_task(self._completer()),
            asyncio.create_task(self._heartbeat()),
            asyncio.create_task(self._maintain()),
            asyncio.create_task(self._presence()),
        ]
        try:
            await self._fetch()
            await self._drain()
        finally:
            for t in background:
                t.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await self._write_outcomes()
            await self._leave()
            # closed on their own threads: after whatever call a cancelled task left running
            await self._on(self._claim_db, self._claim_store.close)
            await self._on(self._done_db, self._done_store.close)
            await self._on(self._upkeep_db, self._upkeep_store.close)
            await self._on(self._listen_db, self._listener.close)
            for pool in (self._claim_db, self._done_db, self._listen_db, self._upkeep_db):
                pool.shutdown(wait=False)
            self._threads.shutdown()
            log.info("worker stopped", extra={"worker_id": self.id, "processed": self.processed})

    def _on_signal(self) -> None:
        if self._stopping:  # a second signal: stop now, releasing what still runs
            self.options.shutdown_grace_s = 0
        self._request_stop()

    async def _on(self, pool: ThreadPoolExecutor, fn: Callable[..., T], *args: Any) -> T:
        return await self._loop.run_in_executor(pool, functools.partial(fn, *args))

    # -- claiming ---------------------------------------------------------------------------

    async def _fetch(self) -> None:
        self._listening: asyncio.Future[list[ClaimedJob]] | None = None
        try:
            await self._fetch_until_stopped()
        finally:
            # the listener must be idle before it is closed, or it could reconnect after;
            # what it claimed meanwhile goes straight back
            if self._listening is not None:
                claimed = await self._listening
                if claimed:
                    ids = [j.id for j in claimed]
                    await self._on(self._done_db, self._done_store.jobs_release, self.id, ids)

    def _held(self) -> list[int]:
        """The jobs this worker holds (on the loop): running, or done and not yet written.
        A claim retried after a lost connection takes back the others running under our id."""
        return [*self._running, *(o.job_id for o in self._outcomes)]

    def _claim(self, want: int, held: list[int]) -> list[ClaimedJob]:
        opts = self.options
        return self._claim_store.jobs_claim(
            self.id,
            want,
            opts.lease_s,
            opts.queues,
            [int(p) for p in opts.priorities],
            held,
            opts.pool,
        )

    def _wait_then_claim(self, want: int, held: list[int]) -> list[ClaimedJob]:
        """On the listener's thread: sleep until jobs may be waiting, then claim at once.

        Claiming here rather than back on the loop saves two thread hand-offs between the
        notification and the job's start. After a poll interval without notification it
        claims too: delayed jobs and retries come due without one.
        """
        self._listener.wait(self.options.poll_s)
        return [] if self._stopping else self._claim(want, held)

    async def _fetch_until_stopped(self) -> None:
        opts = self.options
        if not opts.enabled:
            await self._stop_requested.wait()
            return
        while not self._stopping:
            free = opts.concurrency - len(self._running)
            if free <= 0:  # saturated: wait for a slot (or stop)
                self._wake.clear()
                await self._wake.wait()
                continue
            want = min(free, opts.batch_size)
            jobs = await self._on(self._claim_db, self._claim, want, self._held())
            for job in jobs:
                self._start(job)
            if len(jobs) == want:
                continue  # there may be more
            if opts.burst and not self._running and not jobs:
                if await self._on(self._claim_db, self._nothing_left):
                    return
            # The queue is empty; only a notification (or time) brings more. The listener
            # claims alone meanwhile; the claim connection is not used from here until then.
            want = min(opts.concurrency - len(self._running), opts.batch_size)
            self._listening = self._loop.run_in_executor(
                self._listen_db, self._wait_then_claim, want, self._held()
            )
            stopped: asyncio.Future[Any] = asyncio.ensure_future(self._stop_requested.wait())
            waits: list[asyncio.Future[Any]] = [self._listening, stopped]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if self._listening.done():
                jobs, self._listening = self._listening.result(), None
                for job in jobs:
                    self._start(job)

    def _nothing_left(self) -> bool:
        active = (JobState.PENDING, JobState.FAILED, JobState.RUNNING)
        queues = set(self.options.queues or [])
        priorities = set(self.options.priorities)
        return not any(
            s.state in active and s.priority in priorities and (not queues or s.queue in queues)
            for s in self._claim_store.queues_stats()
        )

    def _start(self, job: ClaimedJob) -> None:
        if job.id in self._running:
            # reaped while we were cut off from the database, and claimed back by us: the run
            # in hand goes on (its outcome is written under the new claim), not a second one
            return
        task = self.app.find_task(job.task)
        override = self.max_attempts.get(job.priority)
        if override is not None and not (task and task.max_attempts):
            job = replace(job, max_attempts=override)
        if job.run_at is not None:
            waited = (datetime.now(UTC) - job.run_at).total_seconds()
            metrics.JOB_WAIT.labels(job.queue).observe(max(0.0, waited))
        ctx = JobContext(job.id, job.task, job.queue, job.attempt, job.max_attempts, self.id)
        run = _Running(job, ctx)
        self._running[job.id] = run
        run.task = self._loop.create_task(self._execute(run))

    # -- running ----------------------------------------------------------------------------

    async def _execute(self, run: _Running) -> None:
        job = run.job
        task = self.app.find_task(job.task)
        started = time.perf_counter()
        labels = (job.queue, job.task)
        metrics.JOBS_STARTED.labels(*labels).inc()
        error: BaseException | None = None
        try:
            if task is None:
                raise UnknownTaskError(
                    f"no task named {job.task!r} is registered in this worker "
                    f"(it has: {', '.join(sorted(self.app.tasks)) or 'none'}); once a worker "
                    f"that knows it runs, replay the job: tailrace jobs replay {job.id}"
                )
            # the job's own arguments, and the task run in the span its enqueuer's trace
            # continues in (tracing metadata rides in the arguments)
            job_args, fn = tracing.job_call(task.fn, task.is_async, job)
            args, kwargs = call_args(job_args)
            if task.pass_context:
                args = (run.ctx, *args)
            timeout = job.timeout_s if job.timeout_s is not None else task.timeout_s
            if task.is_async:
                coro = fn(*args, **kwargs)
                await (asyncio.wait_for(coro, timeout) if timeout else coro)
            else:
                future = self._threads.submit(functools.partial(fn, *args, **kwargs))
                try:
                    await (asyncio.wait_for(future, timeout) if timeout else future)
                except (TimeoutError, asyncio.CancelledError):
                    self._threads.abandon()  # the thread runs on; the next job gets another
                    raise
        except asyncio.CancelledError:
            if run.stop_reason is None:
                raise
            error = JobCancelledError(f"job {job.id} was cancelled")
        except TimeoutError:
            run.ctx.cancelled.set()  # a sync task's thread can't be killed: ask it to stop
            error = JobTimeoutError(f"task {job.task!r} ran past its timeout of {job.timeout_s} s")
            error.__traceback__ = None
        except BaseException as exc:
            error = exc
        finally:
            self._running.pop(job.id, None)
            self._wake.set()
        metrics.JOB_DURATION.labels(*labels).observe(time.perf_counter() - started)
        self._report(run, error)

    def _report(self, run: _Running, error: BaseException | None) -> None:
        job = run.job
        if run.stop_reason in ("lease", "shutdown"):
            return  # not ours to report: reaped by another worker, or released at shutdown
        self.processed += 1
        if error is None:
            outcome = Outcome(job.id, JobState.SUCCEEDED)
            metrics.JOBS_COMPLETED.labels(job.queue, job.task).inc()
        elif isinstance(error, JobCancelledError) or run.stop_reason == "cancel":
            outcome = Outcome(job.id, JobState.CANCELLED, self._error(job, error))
            log.info("job cancelled", extra={"job_id": job.id, "task": job.task})
        else:
            outcome = self._failure(job, error)
        self._outcomes.append(outcome)
        self._flush.set()

    def _error(self, job: ClaimedJob, error: BaseException) -> dict[str, Any]:
        tb = "".join(traceback.format_exception(error)) if error.__traceback__ else None
        return {
            "attempt": job.attempt,
            "at": datetime.now(UTC).isoformat(),
            "worker_id": self.id,
            "error": f"{type(error).__name__}: {error}",
            "traceback": tb,
        }

    def _failure(self, job: ClaimedJob, error: BaseException) -> Outcome:
        detail = self._error(job, error)
        metrics.JOBS_FAILED.labels(job.queue, job.task).inc()
        # attempts decided by this worker's setting (see `_start`) are stored with the outcome
        decided = job.max_attempts if job.priority in self.max_attempts else None
        # another attempt on this worker would fail the same way: a job whose task it does
        # not know is dead at once, its reason recorded, to replay once a worker knows it
        if job.attempt >= job.max_attempts or isinstance(error, UnknownTaskError):
            metrics.JOBS_DEAD.labels(job.queue, job.task).inc()
            log.warning(
                "job dead",
                extra={
                    "job_id": job.id,
                    "task": job.task,
                    "attempt": job.attempt,
                    "error": detail["error"],
                },
            )
            return Outcome(job.id, JobState.DEAD, detail, max_attempts=decided)
        task = self.app.find_task(job.task)
        policy = (task.retry if task and task.retry else None) or self.app.retry
        retry_at = datetime.now(UTC) + timedelta(seconds=policy.delay(job.attempt))
        log.info(
            "job failed, will retry",
            extra={
                "job_id": job.id,
                "task": job.task,
                "attempt": job.attempt,
                "retry_at": retry_at.isoformat(),
                "error": detail["error"],
            },
        )
        return Outcome(
            job.id,
            JobState.FAILED,
            detail,
            retry_at,
            self.app.sort_at(retry_at, job.priority, job.queue),
            max_attempts=decided,
        )

    # -- reporting --------------------------------------------------------------------------

    async def _write_outcomes(self) -> None:
        # a batch leaves the list only once written: if this task is cancelled mid-write
        # (shutdown), the final call writes it again, which is harmless (finish is idempotent)
        while self._outcomes:
            batch = self._outcomes[:]
            await self._on(self._done_db, self._done_store.jobs_finish, self.id, batch)
            del self._outcomes[: len(batch)]

    async def _completer(self) -> None:
        # outcomes that arrive while a write is in flight form the next batch
        while True:
            await self._flush.wait()
            self._flush.clear()
            try:
                await self._write_outcomes()
            except Exception:
                log.exception("writing job outcomes failed; will retry")
                await asyncio.sleep(1.0)
                self._flush.set()

    # -- leases, cancellation, maintenance --------------------------------------------------

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.options.heartbeat_interval)
            ids = list(self._running)
            if not ids:
                continue
            try:
                held, cancelled = await self._on(
                    self._done_db,
                    self._done_store.lease_renew,
                    self.id,
                    ids,
                    self.options.lease_s,
                )
            except Exception:
                log.exception("renewing leases failed")
                continue
            for job_id in ids:
                run = self._running.get(job_id)
                if run is None:
                    continue
                if job_id not in held:
                    log.warning("lease lost; stopping job", extra={"job_id": job_id})
                    self._stop_job(run, "lease")
                elif job_id in cancelled:
                    log.info("cancel requested; stopping job", extra={"job_id": job_id})
                    self._stop_job(run, "cancel")

    def _stop_job(self, run: _Running, reason: str) -> None:
        if run.stop_reason is not None:
            return
        run.stop_reason = reason
        run.ctx.lease_lost = reason == "lease"
        run.ctx.cancelled.set()
        task = self.app.find_task(run.job.task)
        if run.task is not None and (task is None or task.is_async):
            run.task.cancel()  # sync tasks stop cooperatively via ctx.cancelled

    async def _maintain(self) -> None:
        while True:
            try:
                await self._on(self._upkeep_db, self._maintenance.tick)
            except Exception:
                log.exception("maintenance failed")
            await asyncio.sleep(self.options.maintenance_s)

    async def _presence(self) -> None:
        """Announce this process (the dashboard's workers page) and beat while it runs."""
        opts = self.options
        queues = opts.queues
        priorities = [int(p) for p in opts.priorities]
        while True:
            try:
                await self._on(
                    self._upkeep_db,
                    self._upkeep_store.worker_beat,
                    self.id,
                    queues,
                    priorities,
                    opts.concurrency,
                    len(self._running),
                    self.processed,
                    opts.pool,
                )
            except Exception:
                log.exception("announcing the worker failed")
            await asyncio.sleep(opts.heartbeat_interval)

    async def _leave(self) -> None:
        try:
            await self._on(self._upkeep_db, self._upkeep_store.worker_gone, self.id)
        except Exception:  # a worker that cannot say goodbye is forgotten when it goes stale
            log.exception("removing the worker's presence failed")

    async def _drain(self) -> None:
        """After stop: let in-flight jobs finish within the grace period, release the rest."""
        pending = [r.task for r in self._running.values() if r.task is not None]
        if pending:
            await asyncio.wait(pending, timeout=self.options.shutdown_grace_s)
        left = list(self._running.values())
        for run in left:
            self._stop_job(run, "shutdown")
        if left:
            ids = [r.job.id for r in left]
            await self._on(self._done_db, self._done_store.jobs_release, self.id, ids)
            log.info("released unfinished jobs", extra={"job_ids": ids})
            tasks = [r.task for r in left if r.task is not None]
            await asyncio.wait(tasks, timeout=1.0)


def run_workers(
    app_factory: Callable[[], App],
    options: WorkerOptions,
    processes: int,
    *,
    in_child: Callable[[int], None] | None = None,
    forked: Callable[[], None] | None = None,
) -> Sequence[int]:
    """Run ``processes`` worker processes (fork) and wait for them; returns exit codes.
    `in_child` is called first in each child with its index, `forked` in this process once
    every child is started."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    procs = [
        ctx.Process(target=_child, args=(app_factory, options, i, in_child))
        for i in range(processes)
    ]
    for p in procs:
        p.start()
    if forked is not None:
        forked()

    def forward(signum: int, _frame: Any) -> None:
        # docker stop, Kubernetes and systemd (KillMode=mixed) signal only the main process
        # Nothing here may poll the children: this handler can run inside a join() that has
        # just reaped one, and asking for its exit code again there breaks that join.
        for p in procs:
            if p.pid is not None:
                with contextlib.suppress(ProcessLookupError):  # already gone
                    os.kill(p.pid, signum)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        for p in procs:
            try:
                p.join()
            except KeyboardInterrupt:  # Ctrl-C reached the children too: wait for them
                p.join()
    finally:
        signal.signal(signal.SIGTERM, previous)
    return [p.exitcode or 0 for p in procs]


def _child(
    app_factory: Callable[[], App],
    options: WorkerOptions,
    index: int,
    in_child: Callable[[int], None] | None,
) -> None:
    if in_child is not None:
        in_child(index)
    Worker(app_factory(), options).run()
