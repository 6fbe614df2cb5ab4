"""A job's worker processes on this machine, one per worker index (run by the local
executor, for the admin service and for ``tailrace reprocess``).

A worker that dies before its job is finished (killed by a signal, or crashed) is started
again with the same index, up to `max_restarts` times per index: its file resumes from the
last checkpoint once the lease the dead process held expires. Each worker's JSON logs go to
a file of their own, so that a progress bar on the terminal stays readable.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ..pipeline.sinks.stdout import STDOUT_LOCK_ENV

log = logging.getLogger("tailrace.executor")

_SERVICE_ONLY = frozenset({"TAILRACE_API_TOKENS", "TAILRACE_SESSION_SECRET"})


@dataclass
class _Child:
    index: int
    process: subprocess.Popen[bytes]
    log_file: IO[bytes]
    restarts: int = 0


@dataclass
class WorkerProcesses:
    database_url: str
    job_id: str
    workers: int
    log_dir: Path
    max_restarts: int = 5
    env: dict[str, str] = field(default_factory=dict)
    nice: int = 0  # how much lower than this process's the workers' CPU priority is
    # The workers write to this process's standard output (a stdout: sink under `tailrace
    # reprocess`), their logs to their files; they lock around each write (`STDOUT_LOCK_ENV`).
    share_stdout: bool = False
    _children: dict[int, _Child] = field(default_factory=dict)

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for index in range(self.workers):
            self._spawn(index, restarts=0)

    def _spawn(self, index: int, restarts: int) -> None:
        env = {
            # the service's own secrets stay with it: a worker has no use for them
            **{k: v for k, v in os.environ.items() if k not in _SERVICE_ONLY},
            **self.env,
            "TAILRACE_DATABASE_URL": self.database_url,
            "JOB_ID": self.job_id,
            "WORKER_INDEX": str(index),
        }
        if self.share_stdout:
            env[STDOUT_LOCK_ENV] = str(self.log_dir / "stdout.lock")
        log_file = (self.log_dir / f"worker-{index}.log").open("ab")
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tailrace",
                "worker",
                "--job",
                self.job_id,
                "--index",
                str(index),
            ],
            env=env,
            stdout=None if self.share_stdout else log_file,
            stderr=log_file if self.share_stdout else subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        if self.nice:
            try:
                os.setpriority(os.PRIO_PROCESS, process.pid, os.nice(0) + self.nice)
            except OSError:  # it exited already, or the platform refuses: it runs as it is
                pass
        self._children[index] = _Child(index, process, log_file, restarts)

    @property
    def pids(self) -> dict[int, int]:
        return {index: child.process.pid for index, child in self._children.items()}

    def poll(self, job_finished: bool) -> bool:
        """Reap exited workers, restarting those that died while work remains.
        Returns True while any worker runs."""
        for index, child in list(self._children.items()):
            code = child.process.poll()
            if code is None:
                continue
            child.log_file.close()
            del self._children[index]
            if code == 0 or job_finished:
                continue
            if child.restarts >= self.max_restarts:
                log.error(
                    "worker keeps dying; not restarting it",
                    extra={"job_id": self.job_id, "worker_index": index, "exit": code},
                )
                continue
            log.warning(
                "worker died; restarting it",
                extra={"job_id": self.job_id, "worker_index": index, "exit": code},
            )
            self._spawn(index, child.restarts + 1)
        return bool(self._children)

    def signal(self, signum: int = signal.SIGTERM) -> None:
        for child in self._children.values():
            if child.process.poll() is None:
                child.process.send_signal(signum)

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` s for every worker to exit; True if they all did."""
        for child in self._children.values():
            try:
                child.process.wait(timeout)
            except subprocess.TimeoutExpired:
                return False
        return True

    def close(self) -> None:
        """Kill what still runs and release everything."""
        for child in self._children.values():
            if child.process.poll() is None:
                child.process.kill()
            child.process.wait()
            child.log_file.close()
        self._children.clear()
