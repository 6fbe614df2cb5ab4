"""tailrace: durable background work for data platforms.

The names below are imported on first use (PEP 562): `import tailrace` (and so every
`tailrace` command, `--help` included) does not pay for the engine, psycopg and the rest
until something needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    __version__: str

    from .engine.app import App, JobOptions, JobSpec, Schedule
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

_WHERE = {
    "App": ".engine.app",
    "JobOptions": ".engine.app",
    "JobSpec": ".engine.app",
    "Schedule": ".engine.app",
    "Job": ".engine.jobs",
    "JobFilter": ".engine.jobs",
    "RetryPolicy": ".engine.retry",
    "JobState": ".engine.states",
    "Priority": ".engine.states",
    "JobContext": ".engine.tasks",
    "Worker": ".engine.worker",
    "WorkerOptions": ".engine.worker",
    "ConfigurationError": ".errors",
    "InvalidArgumentsError": ".errors",
    "JobCancelledError": ".errors",
    "JobNotFoundError": ".errors",
    "JobTimeoutError": ".errors",
    "QueueFullError": ".errors",
    "TailraceError": ".errors",
    "UnknownTaskError": ".errors",
}

__all__ = [
    "App",
    "ConfigurationError",
    "InvalidArgumentsError",
    "Job",
    "JobCancelledError",
    "JobContext",
    "JobFilter",
    "JobNotFoundError",
    "JobOptions",
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


def __getattr__(name: str) -> Any:
    if name == "__version__":  # the installed distribution's: the git tag it was built from
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("tailrace")
        except PackageNotFoundError:  # run from a source tree that was never installed
            found = "0+unknown"
        globals()[name] = found
        return found
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'tailrace' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # once imported, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
