"""The local executor: the worker processes of the jobs a long-lived process starts (the
admin service) run on this machine; one background thread restarts workers that die and
settles each job once its workers have all exited (`pipeline/jobs/service.py` decides how).
``tailrace reprocess`` runs the same rounds for its one job in the foreground (`watch`),
with a progress bar."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable

from ..pipeline.jobs import ReprocessingJob, ReprocessingStore
from ..pipeline.jobs.service import settle
from ..settings import current, worker_log_dir
from .logs import WorkerLog, read_job_logs
from .processes import WorkerProcesses

log = logging.getLogger("tailrace.executor")

_STOPPED = "stopped with the admin service that ran its workers; resume it to continue"
# The workers run this much nicer than the service (TAILRACE_WORKER_NICE): on a machine they
# keep busy, the service's answers (a dashboard polling a job) do not queue behind them
# (bench/api/run.py: the mixed run's status latency fell several-fold with it).
WORKER_NICE = 10


def writes_to_stdout(sink: str) -> bool:
    """Is `sink` the ``stdout:`` sink?"""
    from ..pipeline.sinks.url import SinkKind, parse_sink_url

    try:
        return parse_sink_url(sink).kind is SinkKind.STDOUT
    except Exception:  # a sink that does not parse fails in the workers, which say why
        return False


class LocalExecutor:
    """`store`: a store to use rather than one of its own (a command that runs one job in the
    foreground, `watch`, shares its own). `share_stdout`: a job whose sink is ``stdout:``
    writes its events to this process's standard output (a command in a pipe), not into
    its workers' log files."""

    def __init__(
        self,
        database_url: str,
        poll_s: float = 0.25,
        worker_nice: int | None = None,
        store: ReprocessingStore | None = None,
        share_stdout: bool = False,
    ) -> None:
        self.database_url = database_url
        self.poll_s = poll_s
        if worker_nice is None:
            worker_nice = current().worker_nice
        self.worker_nice = worker_nice
        self._workers: dict[str, WorkerProcesses] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._store = store
        self._owns_store = store is None
        self.share_stdout = share_stdout

    def start(self) -> None:
        """Look after the jobs launched here on a thread of its own."""
        if self._store is None:
            self._store = ReprocessingStore(self.database_url)
        self._thread = threading.Thread(target=self._run, name="tailrace-supervisor", daemon=True)
        self._thread.start()

    def launch(self, job: ReprocessingJob) -> None:
        """Start a planned job's workers."""
        with self._lock:
            self._launch(job)

    def resume(self, job_id: str, reopen: Callable[[], ReprocessingJob]) -> ReprocessingJob:
        # Under the lock the poll loop waits: it cannot see the job reset but not launched
        # and settle it as failed because its last workers have exited.
        with self._lock:
            job = reopen()
            self._launch(job)
        return job

    def _launch(self, job: ReprocessingJob) -> None:
        previous = self._workers.pop(job.id, None)
        if previous is not None:  # resumed while the last workers still wind down
            previous.close()
        workers = WorkerProcesses(
            self.database_url,
            job.id,
            job.total_workers,
            log_dir=worker_log_dir(job.id),
            nice=self.worker_nice,
            share_stdout=self.share_stdout and writes_to_stdout(job.config.sink),
        )
        workers.start()
        self._workers[job.id] = workers

    def cancelled(self, job_id: str) -> None:
        """Nothing to do: the workers see the cancel at their next status write."""

    def logs(self, job_id: str, tail: int | None, since_s: float | None) -> list[WorkerLog]:
        return read_job_logs(worker_log_dir(job_id), job_id, tail=tail, since_s=since_s)

    def running(self) -> list[str]:
        with self._lock:
            return sorted(self._workers)

    def _run(self) -> None:
        while not self._stopping.wait(self.poll_s):
            self.poll()

    def poll(self) -> None:
        """One round over every job: reap and restart its workers, settle it once they
        have all exited."""
        with self._lock:
            watched = list(self._workers)
        for job_id in watched:
            try:
                self._poll_job(job_id)
            except Exception:
                # one job's trouble (a database hiccup) must not stop the others' care
                log.exception("supervising a job failed", extra={"job_id": job_id})

    def watch(self, job_id: str, each_round: Callable[[], None] | None = None) -> None:
        """Look after one job here, in the foreground, until its workers have all exited
        and it is settled: what a command that runs one job does (`tailrace reprocess`),
        showing its progress in `each_round`. A store that fails is raised, not logged: the
        command says so and stops."""
        while True:
            settled = self._poll_job(job_id)
            if each_round is not None:
                each_round()
            if settled:
                return
            time.sleep(self.poll_s)

    def _poll_job(self, job_id: str) -> bool:
        """Reap the job's exited workers, restarting those that died while work remains;
        settle the job once none runs. True once it is settled (or not looked after here)."""
        assert self._store is not None, "start() first, or give a store"
        with self._lock:
            workers = self._workers.get(job_id)
        if workers is None:
            return True
        # read without the lock: launch() (an API request starting a job) waits for it,
        # and with many jobs running these reads took most of each round
        finished = self._store.job_status(job_id).finished
        with self._lock:
            if self._workers.get(job_id) is not workers:
                return False  # resumed meanwhile: its new workers are seen next round
            if workers.poll(job_finished=finished):
                return False
            workers.close()
            del self._workers[job_id]
            job = settle(self._store, job_id)
        log.info("job settled", extra={"job_id": job_id, "status": str(job.status)})
        return True

    def kill(self, job_id: str) -> None:
        """SIGKILL the job's workers now (a second Ctrl-C). Safe in a signal handler: it
        takes no lock, which the interrupted code may hold."""
        workers = self._workers.get(job_id)
        if workers is not None:
            workers.signal(signal.SIGKILL)

    def close(self) -> None:
        """Kill whatever workers still run and forget their jobs, settling none: a command
        that stops on an error leaves its job as it was, to be resumed."""
        with self._lock:
            for workers in self._workers.values():
                workers.close()
            self._workers.clear()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop supervising: workers get SIGTERM (they checkpoint and release their
        files), and are killed if still running after `timeout` seconds."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            for workers in self._workers.values():
                workers.signal(signal.SIGTERM)
            for job_id, workers in self._workers.items():
                workers.wait(timeout)
                workers.close()
                if self._store is None:
                    continue
                try:
                    # no process looks after the job now: say so, and let it be resumed
                    settle(self._store, job_id, _STOPPED)
                except Exception:  # the others still get their workers stopped
                    log.exception("settling a job at shutdown failed", extra={"job_id": job_id})
            self._workers.clear()
        if self._store is not None and self._owns_store:
            self._store.close()
