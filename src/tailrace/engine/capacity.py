"""How many jobs a queue may hold: a cap on the whole queue, and caps per priority.

A queue's cap (``tailrace queues capacity NAME N``) counts, for a job of some priority, the
waiting and running jobs of that priority or a more urgent one. A queue filled with BULK jobs
therefore refuses more BULK jobs but still takes CRITICAL ones: less urgent work never takes
the room of more urgent work. The price is that the queue may then hold more than its cap
(up to one cap's worth per priority level).

A cap per priority (``--priority CRITICAL``, or the setting
``TAILRACE_JOBS_QUEUE_CAPACITY_<PRIORITY>``, also read as ``JOBS_QUEUE_CAPACITY_<PRIORITY>`` or
from tailrace.toml, in the process that enqueues, for every queue without its own) counts only
the jobs of that priority, as the priority-job framework's per-priority queues do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..errors import QueueFullError
from ..settings import current
from .states import Priority


def capacities_from_env() -> dict[Priority, int]:
    """``TAILRACE_JOBS_QUEUE_CAPACITY_<PRIORITY>`` (or the bare ``JOBS_QUEUE_CAPACITY_…``, or
    tailrace.toml): the most jobs of that priority one queue holds."""
    settings = current()
    found: dict[Priority, int] = {}
    for priority in Priority:
        value = getattr(settings, f"jobs_queue_capacity_{priority.name.lower()}")
        if value is not None:
            found[priority] = int(value)
    return found


@dataclass(frozen=True)
class Limits:
    """The caps that apply to one queue: its own, and one per priority."""

    queue_cap: int | None = None
    priority_caps: dict[int, int] = field(default_factory=dict)

    @classmethod
    def of(
        cls, rows: Iterable[tuple[int | None, int]], defaults: Mapping[Priority, int] | None
    ) -> Limits:
        """From the store's rows (priority, capacity), priority NULL for the queue's own cap;
        ``defaults`` (the environment's per-priority caps) fill the priorities it does not set."""
        queue_cap: int | None = None
        caps = {int(p): n for p, n in (defaults or {}).items()}
        for priority, capacity in rows:
            if priority is None:
                queue_cap = capacity
            else:
                caps[int(priority)] = capacity
        return cls(queue_cap, caps)

    def __bool__(self) -> bool:
        return self.queue_cap is not None or bool(self.priority_caps)

    def check(self, queue: str, depth: Mapping[int, int], adding: Mapping[int, int]) -> None:
        """Raise `QueueFullError` if adding ``adding`` jobs (by priority) to a queue holding
        ``depth`` (by priority) would pass a cap."""
        for priority, count in adding.items():
            cap = self.priority_caps.get(priority)
            held = depth.get(priority, 0)
            if cap is not None and held + count > cap:
                raise QueueFullError(queue, cap, held, Priority(priority).name)
            if self.queue_cap is not None:
                # only the jobs as urgent as this one, or more, count against it
                held = sum(n for p, n in depth.items() if p <= priority)
                more = sum(n for p, n in adding.items() if p <= priority)
                if held + more > self.queue_cap:
                    raise QueueFullError(queue, self.queue_cap, held)


def adding_by_queue(jobs: Iterable[tuple[str, Priority, int]]) -> dict[str, dict[int, int]]:
    """(queue, priority, count) runs -> {queue: {priority: count}}."""
    out: dict[str, dict[int, int]] = {}
    for queue, priority, count in jobs:
        per = out.setdefault(queue, {})
        per[int(priority)] = per.get(int(priority), 0) + count
    return out
