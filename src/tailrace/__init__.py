"""tailrace: durable background work for data platforms."""

from __future__ import annotations

from .engine.app import App, JobSpec, Schedule
from .engine.jobs import Job, JobFilter
from .engine.retry import RetryPolicy
from .engine.states import JobState, Priority
from .engine.tasks import JobContext
from .engine.worker import Worker, WorkerOptions
from .errors import (
    ConfigurationError,
    InvalidArgumentsError,
    JobCancelledError,
    JobNotFoundError,
    JobTimeoutError,
    QueueFullError,
    TailraceError,
    UnknownTaskError,
)

__version__ = "0.1.0"

__all__ = [
    "App",
    "ConfigurationError",
    "InvalidArgumentsError",
    "Job",
    "JobCancelledError",
    "JobContext",
    "JobFilter",
    "JobNotFoundError",
    "JobSpec",
    "JobState",
    "JobTimeoutError",
    "Priority",
    "QueueFullError",
    "RetryPolicy",
    "Schedule",
    "TailraceError",
    "UnknownTaskError",
    "Worker",
    "WorkerOptions",
]
