"""The one walk of a reprocessing job, whoever asks for it: the admin service's routes,
``tailrace reprocess`` and ``tailrace reprocessing``, and the executors.

- start: plan the job (list its files), store it with its engine tasks, hand it to the
  executor; an executor that cannot start the workers leaves the job failed, resumable;
- cancel: mark it, cancel its tasks, tell the executor;
- resume: take over a job whose workers are gone, reopen its unfinished files, launch again;
- settle: give a job whose workers have all exited its final status, from its files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from tailrace.engine.app import App
from tailrace.errors import ConflictError, TailraceError
from tailrace.pipeline.jobs.model import ReprocessingConfig, ReprocessingJob, ReprocessingStatus
from tailrace.pipeline.jobs.store import ReprocessingJobNotFoundError, ReprocessingStore
from tailrace.pipeline.plan import FILE_ATTEMPTS, cancel_tasks, create_job, enqueue_files, plan_job
from tailrace.pipeline.sources import SourceFile

if TYPE_CHECKING:
    from tailrace.executors.base import Executor

T = TypeVar("T")
WORKERS_EXITED = "every worker process exited"


class LaunchFailed(TailraceError):
    """The executor could not start a job's workers: the job is failed with the reason."""

    def __init__(self, job_id: str, reason: str) -> None:
        super().__init__(f"job {job_id} failed: {reason}")
        self.job_id = job_id
        self.reason = reason


class ReprocessingService:
    """Start, cancel, resume and settle jobs on one database handle (`app` for the engine
    tasks, `store` for the job's rows). `executor` runs the workers; without one (a
    command that only cancels) nothing can be started."""

    def __init__(
        self, app: App, store: ReprocessingStore, executor: Executor | None = None
    ) -> None:
        self.app = app
        self.store = store
        self.executor = executor

    # -- start -----------------------------------------------------------------------------

    def plan(
        self,
        config: ReprocessingConfig,
        files: Sequence[SourceFile] | None = None,
        *,
        job_id: str | None = None,
    ) -> ReprocessingJob:
        """Store the job and its tasks, not started yet: for `files` as given (listed
        already, as the API does before it takes a connection), else for every file of the
        config's source, checked first (sink reachable, files found)."""
        if files is None:
            return plan_job(self.app, self.store, config, job_id=job_id)
        return create_job(self.app, self.store, config, files, job_id=job_id)

    def launch(self, job: ReprocessingJob) -> ReprocessingJob:
        """Hand a planned job to the executor; returns the job as launched (its worker
        count, and on Kubernetes its Job's name)."""
        executor = self._executor()
        self._launching(job.id, lambda: executor.launch(job))
        return self.store.job(job.id)

    def start(
        self,
        config: ReprocessingConfig,
        files: Sequence[SourceFile] | None = None,
        *,
        job_id: str | None = None,
    ) -> ReprocessingJob:
        """`plan`, then `launch`."""
        return self.launch(self.plan(config, files, job_id=job_id))

    # -- cancel ----------------------------------------------------------------------------

    def cancel(self, job_id: str) -> ReprocessingJob:
        """Stop a job: pending files are cancelled at once, running ones at their workers'
        next heartbeat, which checkpoint first. Counters stay as they are. A finished job
        is returned as it is, and the executor is told all the same: what it holds for the
        job (Kubernetes' Job, ConfigMap and Secret) goes."""
        job = self.store.job(job_id)
        if not job.status.finished:
            self.store.job_set_status(job_id, ReprocessingStatus.CANCELLED)
            self.store.files_cancel_pending(job_id)
            cancel_tasks(self.app, job_id)
            job = self.store.job(job_id)
        if self.executor is not None:
            self.executor.cancelled(job_id)
        return job

    # -- resume ----------------------------------------------------------------------------

    def resume(self, job_id: str) -> ReprocessingJob:
        """Run a cancelled or failed job again, each unfinished file from its checkpoint;
        also a job left running by workers that are gone (none reports, no live lease: their
        process was killed), which is failed first. The executor reopens and launches in one
        step, so that the old workers' end never settles the new run."""
        executor = self._executor()
        self.store.job_fail_abandoned(job_id)
        return self._launching(job_id, lambda: executor.resume(job_id, lambda: self.reopen(job_id)))

    def reopen(self, job_id: str) -> ReprocessingJob:
        """Reset a cancelled or failed job to pending and enqueue its unfinished files
        again (`resume` without the launch)."""
        job = self.store.job(job_id)
        if job.status is ReprocessingStatus.COMPLETED:
            raise ConflictError(f"job {job_id} is completed: nothing to resume")
        if job.status in (
            ReprocessingStatus.PENDING,
            ReprocessingStatus.RUNNING,
        ) or not self.store.job_reset(job_id):
            status = self.store.job_status(job_id)
            hint = ""
            if status in (ReprocessingStatus.PENDING, ReprocessingStatus.RUNNING):
                # workers killed a moment ago still hold their leases until these run out
                hint = (
                    "; if its workers are gone, resume again once their leases run out (a few"
                    f" seconds), or stop it first with: tailrace reprocessing cancel {job_id}"
                )
            raise ConflictError(
                f"job {job_id} is {status}: only a cancelled or failed job resumes{hint}"
            )
        # tasks a failed job left behind (released by workers that stopped) would run a file
        # beside its new task
        cancel_tasks(self.app, job_id)
        files = self.store.job_reopen(job_id)
        enqueue_files(self.app, job_id, files, attempts=job.config.retry_attempts or FILE_ATTEMPTS)
        return self.store.job(job_id)

    # -- settle ----------------------------------------------------------------------------

    def settle(self, job_id: str, reason: str = WORKERS_EXITED) -> ReprocessingJob:
        """`settle` (below) on this service's store."""
        return settle(self.store, job_id, reason)

    # --------------------------------------------------------------------------------------

    def _executor(self) -> Executor:
        if self.executor is None:
            raise TypeError("this ReprocessingService has no executor: it cannot start workers")
        return self.executor

    def _launching(self, job_id: str, launch: Callable[[], T]) -> T:
        """Start the workers; if that fails, the job is failed with the reason (resumable)
        and `LaunchFailed` says why. A request's own fault (a job that cannot resume, or
        none such) launched nothing and is raised as it is."""
        try:
            return launch()
        except (ConflictError, ReprocessingJobNotFoundError):
            raise
        except Exception as exc:
            reason = f"its workers could not be started: {type(exc).__name__}: {exc}"
            self.store.job_set_status(job_id, ReprocessingStatus.FAILED, reason)
            raise LaunchFailed(job_id, reason) from exc


def settle(store: ReprocessingStore, job_id: str, reason: str = WORKERS_EXITED) -> ReprocessingJob:
    """Give a job whose workers have all exited its final status, from its files: if files
    are left (the workers crashed more often than the executor restarts them, or were
    stopped), it failed for `reason`, and can be resumed. Workers whose rows still say
    running exited without saying so (killed): their rows say that now.

    Only a store is needed: the executors settle from their own threads, on their own
    connection, with no engine handle."""
    store.workers_fail_running(job_id, f"exited without reporting its end ({reason})")
    status = store.job_finalize(job_id)
    if status in (ReprocessingStatus.RUNNING, ReprocessingStatus.PENDING):
        store.job_set_status(job_id, ReprocessingStatus.FAILED, reason)
    elif status is ReprocessingStatus.COMPLETED:
        store.workers_close_pending(job_id)
    return store.job(job_id)
