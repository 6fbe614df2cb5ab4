"""Tasks: the registered Python callables that jobs name, and the context a running job sees."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import JobCancelledError, LeaseLostError
from .retry import RetryPolicy
from .states import Priority


@dataclass
class JobContext:
    """Passed as the first argument to tasks registered with ``pass_context=True``."""

    job_id: int
    task: str
    queue: str
    attempt: int
    max_attempts: int
    worker_id: str
    cancelled: threading.Event = field(default_factory=threading.Event)
    lease_lost: bool = False  # why `cancelled` is set: the lease ran out, no one asked

    def raise_if_cancelled(self) -> None:
        """Call from long sync tasks at safe points: stops the job if a cancel was requested
        or its lease ran out (either seen by the worker at its next heartbeat)."""
        if self.cancelled.is_set():
            if self.lease_lost:
                raise LeaseLostError(
                    f"job {self.job_id} lost its lease (not renewed in time): it went back to "
                    "the queue, or is dead after its last attempt, and this run's outcome is "
                    "not recorded"
                )
            raise JobCancelledError(f"job {self.job_id} was cancelled")


@dataclass(frozen=True)
class Task:
    name: str
    fn: Callable[..., Any]
    is_async: bool
    queue: str | None = None
    priority: Priority | None = None
    max_attempts: int | None = None
    retry: RetryPolicy | None = None
    timeout_s: float | None = None
    pass_context: bool = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Calling a task runs it in-process, like the plain function."""
        return self.fn(*args, **kwargs)


def make_task(fn: Callable[..., Any], name: str | None, **options: Any) -> Task:
    return Task(
        name=name or f"{fn.__module__}.{fn.__qualname__}",
        fn=fn,
        is_async=inspect.iscoroutinefunction(fn),
        **options,
    )


def call_args(args: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """A job's JSON arguments as a call: an object gives keywords, an array positionals,
    null nothing, anything else one positional."""
    if isinstance(args, dict):
        return (), args
    if isinstance(args, list):
        return tuple(args), {}
    if args is None:
        return (), {}
    return (args,), {}
