"""The exceptions tailrace raises. Each names what went wrong and what it is about."""

from __future__ import annotations


class TailraceError(Exception):
    """Base of every error tailrace raises on purpose."""


class ConfigurationError(TailraceError):
    """A setting (URL, environment variable, option) is missing or malformed."""


class ConflictError(TailraceError):
    """An operation that the current state of what it acts on does not allow (resuming a
    running job, say)."""


class InvalidArgumentsError(TailraceError):
    """Job arguments that cannot be stored as JSON."""


class UnknownTaskError(TailraceError):
    """A job names a task that the worker running it does not have."""


class QueueFullError(TailraceError):
    """An enqueue would take a queue past its capacity (for one priority, when
    ``priority`` names it)."""

    def __init__(self, queue: str, capacity: int, depth: int, priority: str | None = None) -> None:
        which = f" for {priority} jobs" if priority else ""
        super().__init__(
            f"queue {queue!r} is full{which}: {depth} jobs waiting or running, capacity {capacity}"
        )
        self.queue = queue
        self.capacity = capacity
        self.depth = depth
        self.priority = priority


class JobNotFoundError(TailraceError):
    """No job has the given id."""

    def __init__(self, job_id: int) -> None:
        super().__init__(f"no job with id {job_id}")
        self.job_id = job_id


class CronExpressionError(TailraceError):
    """A cron expression that cannot be parsed."""


class JobTimeoutError(TailraceError):
    """A task ran longer than its timeout."""


class JobCancelledError(TailraceError):
    """A running job was cancelled and stopped cooperatively."""


class LeaseLostError(JobCancelledError):
    """A job's lease ran out before its worker renewed it (the worker was frozen or cut off):
    the job went back to the queue, or is dead after its last attempt. The reaper records it
    in the job's errors; a task still running is stopped with it (`raise_if_cancelled`)."""


class StoreClosedError(TailraceError):
    """An operation on a store after it was closed."""
