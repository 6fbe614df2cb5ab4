"""What a long-lived process (the admin service) needs from an executor."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ..pipeline.jobs import ReprocessingJob
from .logs import WorkerLog


class Executor(Protocol):
    def start(self) -> None:
        """Begin looking after jobs."""

    def launch(self, job: ReprocessingJob) -> None:
        """Run a planned or resumed job's workers."""

    def resume(self, job_id: str, reopen: Callable[[], ReprocessingJob]) -> ReprocessingJob:
        """Reopen the job (`reopen`, which resets it in the store) and launch it, with no
        look at the job in between: its old workers' end must not settle the new run."""

    def cancelled(self, job_id: str) -> None:
        """The job was cancelled in the store: stop what only the executor can stop."""

    def logs(self, job_id: str, tail: int | None, since_s: float | None) -> list[WorkerLog]:
        """Each worker's last `tail` log lines of the last `since_s` seconds."""

    def stop(self, timeout: float = 10.0) -> None:
        """Stop looking after jobs."""
