"""Job states and priorities."""

from __future__ import annotations

from enum import IntEnum, StrEnum


class JobState(StrEnum):
    """Where a job is in its life."""

    PENDING = "pending"
    """Waiting to run, at or after its ``run_at``."""
    RUNNING = "running"
    """Claimed by a worker that holds its lease."""
    SUCCEEDED = "succeeded"
    """Finished without error."""
    FAILED = "failed"
    """The last attempt raised; the job will be retried at ``run_at``."""
    DEAD = "dead"
    """Attempts exhausted: a dead letter, kept until replayed or discarded."""
    CANCELLED = "cancelled"
    """Cancelled before it ran, or stopped cooperatively while running."""

    @property
    def finished(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.DEAD, JobState.CANCELLED)


class Priority(IntEnum):
    """Lower runs sooner. Waiting jobs age towards CRITICAL so none starves."""

    CRITICAL = 0
    HIGH = 1
    DEFAULT = 2
    LOW = 3
    BULK = 4

    @classmethod
    def parse(cls, value: str | int | Priority) -> Priority:
        if isinstance(value, Priority):
            return value
        if isinstance(value, int):
            return cls(value)
        try:
            return cls[value.strip().upper()]
        except KeyError:
            names = ", ".join(p.name for p in cls)
            raise ValueError(f"unknown priority {value!r}; expected one of {names}") from None

    @classmethod
    def parse_list(cls, text: str) -> list[Priority]:
        """``"CRITICAL,HIGH"`` -> [CRITICAL, HIGH] (the WORKER_PRIORITY_FILTER format)."""
        return [cls.parse(part) for part in text.split(",") if part.strip()]


# Seed defaults (reference 002): CRITICAL jobs get 5 attempts, the others 3.
DEFAULT_MAX_ATTEMPTS: dict[Priority, int] = {
    Priority.CRITICAL: 5,
    Priority.HIGH: 3,
    Priority.DEFAULT: 3,
    Priority.LOW: 3,
    Priority.BULK: 3,
}
